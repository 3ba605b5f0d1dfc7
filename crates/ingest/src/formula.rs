//! Formulas a file was saved without results for (scripts and some
//! exporters write `<f>C2/B2*100</f>` and no value): the common cases are
//! computed here — numbers, text in quotes, `TRUE`/`FALSE`, references to
//! cells of the same sheet (`B2`, `$B$2`, ranges `B2:B9` inside functions),
//! `+ - * / ^ & %`, comparisons, and `SUM`, `AVERAGE`, `MIN`, `MAX`,
//! `COUNT`, `ROUND`, `ABS`, `IF`. Anything else (another sheet, a name, a
//! function not listed) is left as formula text, and a note says so.
//!
//! No crate evaluates spreadsheet formulas in f64 with a small footprint
//! (xlformula_engine computes in f32), hence this one screenful of a
//! recursive-descent evaluator. Depth and the cells a formula may touch are
//! bounded, so a hostile formula costs little.

use std::collections::HashMap;

/// A value while computing.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    Bool(bool),
    Blank,
    /// `#DIV/0!` and friends: the cell becomes an error (null, noted).
    Error,
}

impl Value {
    fn number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Blank => Some(0.0),
            Value::Text(t) => t.trim().parse().ok(),
            Value::Error => None,
        }
    }
}

/// Where a formula reads cells from: a cell's value by 0-based sheet row
/// and column, computing formula cells as needed.
pub trait Cells {
    /// `None` when the cell is a formula this evaluator cannot compute.
    fn value(&mut self, row: u32, col: u32, depth: usize) -> Option<Value>;
}

/// Most nested references, parentheses and function calls followed.
pub const MAX_DEPTH: usize = 64;
/// Most cells one formula may read (ranges included).
const MAX_CELLS: usize = 100_000;

/// Compute a formula (with or without its leading `=`). `None` when it uses
/// something this evaluator does not know.
pub fn evaluate(formula: &str, cells: &mut dyn Cells, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    let src = formula.trim().trim_start_matches('=');
    let mut p = Parser { s: src.as_bytes(), i: 0, cells, depth, read: 0 };
    let v = p.compare()?;
    p.skip();
    (p.i == p.s.len()).then_some(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    cells: &'a mut dyn Cells,
    depth: usize,
    read: usize,
}

/// A function argument: one value, or the values of a range.
enum Arg {
    One(Value),
    Many(Vec<Value>),
}

impl Parser<'_> {
    fn skip(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, t: &str) -> bool {
        self.skip();
        if self.s[self.i..].starts_with(t.as_bytes()) {
            self.i += t.len();
            return true;
        }
        false
    }

    fn compare(&mut self) -> Option<Value> {
        let a = self.concat()?;
        for op in ["<=", ">=", "<>", "=", "<", ">"] {
            if self.eat(op) {
                let b = self.concat()?;
                let ord = match (a.number(), b.number(), &a, &b) {
                    (_, _, Value::Text(x), Value::Text(y)) => x.to_lowercase().partial_cmp(&y.to_lowercase()),
                    (Some(x), Some(y), _, _) => x.partial_cmp(&y),
                    _ => return Some(Value::Error),
                }?;
                use std::cmp::Ordering::*;
                let r = match op {
                    "<=" => ord != Greater,
                    ">=" => ord != Less,
                    "<>" => ord != Equal,
                    "=" => ord == Equal,
                    "<" => ord == Less,
                    _ => ord == Greater,
                };
                return Some(Value::Bool(r));
            }
        }
        Some(a)
    }

    fn concat(&mut self) -> Option<Value> {
        let mut a = self.additive()?;
        while self.eat("&") {
            let b = self.additive()?;
            a = Value::Text(format!("{}{}", text(&a), text(&b)));
        }
        Some(a)
    }

    fn additive(&mut self) -> Option<Value> {
        let mut a = self.term()?;
        loop {
            let op = if self.eat("+") {
                1.0
            } else if self.eat("-") {
                -1.0
            } else {
                return Some(a);
            };
            let b = self.term()?;
            a = arith(&a, &b, |x, y| Some(x + op * y));
        }
    }

    fn term(&mut self) -> Option<Value> {
        let mut a = self.power()?;
        loop {
            if self.eat("*") {
                let b = self.power()?;
                a = arith(&a, &b, |x, y| Some(x * y));
            } else if self.eat("/") {
                let b = self.power()?;
                a = arith(&a, &b, |x, y| (y != 0.0).then(|| x / y));
            } else {
                return Some(a);
            }
        }
    }

    fn power(&mut self) -> Option<Value> {
        let a = self.unary()?;
        if self.eat("^") {
            let b = self.unary()?;
            return Some(arith(&a, &b, |x, y| Some(x.powf(y)).filter(|v| v.is_finite())));
        }
        Some(a)
    }

    fn unary(&mut self) -> Option<Value> {
        if self.eat("-") {
            let v = self.unary()?;
            return Some(arith(&Value::Number(0.0), &v, |_, y| Some(-y)));
        }
        if self.eat("+") {
            return self.unary();
        }
        let v = self.primary()?;
        if self.eat("%") {
            return Some(arith(&v, &Value::Number(100.0), |x, y| Some(x / y)));
        }
        Some(v)
    }

    fn primary(&mut self) -> Option<Value> {
        self.skip();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let v = self.primary_inner();
        self.depth -= 1;
        v
    }

    fn primary_inner(&mut self) -> Option<Value> {
        let c = *self.s.get(self.i)?;
        if c == b'(' {
            self.i += 1;
            let v = self.compare()?;
            return self.eat(")").then_some(v);
        }
        if c == b'"' {
            return self.string();
        }
        if c.is_ascii_digit() || c == b'.' {
            return self.number();
        }
        match self.arg()? {
            Arg::One(v) => Some(v),
            Arg::Many(_) => None,
        }
    }

    fn string(&mut self) -> Option<Value> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match *self.s.get(self.i)? {
                b'"' if self.s.get(self.i + 1) == Some(&b'"') => {
                    out.push(b'"');
                    self.i += 2;
                }
                b'"' => {
                    self.i += 1;
                    return Some(Value::Text(String::from_utf8(out).ok()?));
                }
                b => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_digit() || *b == b'.') {
            self.i += 1;
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
        }
        std::str::from_utf8(&self.s[start..self.i]).ok()?.parse().ok().map(Value::Number)
    }

    /// A word: a function call, `TRUE`/`FALSE`, a cell or a range.
    fn arg(&mut self) -> Option<Arg> {
        self.skip();
        let start = self.i;
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'$' | b'.' | b'_')) {
            self.i += 1;
        }
        let word = std::str::from_utf8(&self.s[start..self.i]).ok()?.to_ascii_uppercase();
        if word.is_empty() {
            return None;
        }
        if self.eat("(") {
            return self.call(&word).map(Arg::One);
        }
        match word.as_str() {
            "TRUE" => return Some(Arg::One(Value::Bool(true))),
            "FALSE" => return Some(Arg::One(Value::Bool(false))),
            _ => {}
        }
        let (r0, c0) = cell_ref(&word)?;
        if !self.eat(":") {
            return Some(Arg::One(self.read(r0, c0)?));
        }
        let end = self.word()?;
        let (r1, c1) = cell_ref(&end)?;
        let (rows, cols) = (r0.min(r1)..=r0.max(r1), c0.min(c1)..=c0.max(c1));
        if rows.clone().count().saturating_mul(cols.clone().count()) > MAX_CELLS {
            return None;
        }
        let mut out = Vec::new();
        for r in rows {
            for c in cols.clone() {
                out.push(self.read(r, c)?);
            }
        }
        Some(Arg::Many(out))
    }

    fn word(&mut self) -> Option<String> {
        self.skip();
        let start = self.i;
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'$') {
            self.i += 1;
        }
        Some(std::str::from_utf8(&self.s[start..self.i]).ok()?.to_ascii_uppercase())
    }

    fn read(&mut self, r: u32, c: u32) -> Option<Value> {
        self.read += 1;
        if self.read > MAX_CELLS {
            return None;
        }
        self.cells.value(r, c, self.depth + 1)
    }

    fn call(&mut self, name: &str) -> Option<Value> {
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.call_arg()?);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") && !self.eat(";") {
                    return None;
                }
            }
        }
        apply(name, args)
    }

    fn call_arg(&mut self) -> Option<Arg> {
        let save = self.i;
        if let Some(a @ Arg::Many(_)) = self.arg() {
            return Some(a);
        }
        self.i = save;
        self.compare().map(Arg::One)
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Number(n) => crate::cell::fmt_float(*n),
        Value::Text(t) => t.clone(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Blank | Value::Error => String::new(),
    }
}

fn arith(a: &Value, b: &Value, f: impl Fn(f64, f64) -> Option<f64>) -> Value {
    match (a.number(), b.number()) {
        (Some(x), Some(y)) => f(x, y).map_or(Value::Error, Value::Number),
        _ => Value::Error,
    }
}

/// Numbers among the arguments, as SUM and friends see them: a range skips
/// text and blanks; a single argument counts as a number when it reads as one.
fn numbers(args: &[Arg]) -> Option<Vec<f64>> {
    let mut out = Vec::new();
    for a in args {
        match a {
            Arg::One(Value::Error) => return None,
            Arg::One(v) => out.push(v.number()?),
            Arg::Many(vs) => {
                for v in vs {
                    match v {
                        Value::Number(n) => out.push(*n),
                        Value::Error => return None,
                        _ => {}
                    }
                }
            }
        }
    }
    Some(out)
}

/// A function over its arguments: `None` for a function not listed (the
/// formula stays text); an error value where Excel would give one.
fn apply(name: &str, args: Vec<Arg>) -> Option<Value> {
    let one = |i: usize| match args.get(i) {
        Some(Arg::One(v)) => Some(v.clone()),
        _ => None,
    };
    let num = |i: usize| one(i).and_then(|v| v.number());
    let nums = numbers(&args);
    let v = match name {
        "SUM" => nums.map(|n| n.iter().sum()),
        "AVERAGE" => nums.filter(|n| !n.is_empty()).map(|n| n.iter().sum::<f64>() / n.len() as f64),
        "MIN" => nums.map(|n| n.iter().copied().reduce(f64::min).unwrap_or(0.0)),
        "MAX" => nums.map(|n| n.iter().copied().reduce(f64::max).unwrap_or(0.0)),
        "COUNT" => nums.map(|n| n.len() as f64),
        "ABS" => num(0).map(f64::abs),
        "ROUND" => num(0).zip(if args.len() > 1 { num(1) } else { Some(0.0) }).map(|(x, d)| {
            let f = 10f64.powi(d.clamp(-15.0, 15.0) as i32);
            (x * f).round() / f
        }),
        "IF" => {
            let cond = match one(0)? {
                Value::Bool(b) => b,
                Value::Error => return Some(Value::Error),
                other => match other.number() {
                    Some(n) => n != 0.0,
                    None => return Some(Value::Error),
                },
            };
            return Some(if cond { one(1).unwrap_or(Value::Bool(true)) } else { one(2).unwrap_or(Value::Bool(false)) });
        }
        _ => return None,
    };
    Some(v.map_or(Value::Error, Value::Number))
}

/// `B2`, `$B$2`, `AA10` (upper case) → 0-based (row, column); anything
/// else (another sheet, a name) is `None`. Also reads `--range` corners.
pub fn cell_ref(w: &str) -> Option<(u32, u32)> {
    let w = w.replace('$', "");
    let split = w.find(|c: char| c.is_ascii_digit())?;
    let (letters, digits) = w.split_at(split);
    if letters.is_empty() || letters.len() > 3 || !letters.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let col = letters.bytes().fold(0u32, |a, b| a * 26 + u32::from(b - b'A' + 1)) - 1;
    let row = digits.parse::<u32>().ok().filter(|&r| r > 0)? - 1;
    Some((row, col))
}

/// Cells of a plain map, for tests and small grids.
impl Cells for HashMap<(u32, u32), Value> {
    fn value(&mut self, row: u32, col: u32, _: usize) -> Option<Value> {
        Some(self.get(&(row, col)).cloned().unwrap_or(Value::Blank))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet() -> HashMap<(u32, u32), Value> {
        let mut m = HashMap::new();
        m.insert((1, 1), Value::Number(200.0)); // B2
        m.insert((1, 2), Value::Number(50.0)); // C2
        m.insert((2, 1), Value::Number(0.0)); // B3
        m.insert((2, 2), Value::Text("Kano".into())); // C3
        m
    }

    fn eval(f: &str) -> Option<Value> {
        evaluate(f, &mut sheet(), 0)
    }

    #[test]
    fn the_common_cases() {
        assert_eq!(eval("=C2/B2*100"), Some(Value::Number(25.0)));
        assert_eq!(eval("=$C$2 + B2 ^ 2 - 1"), Some(Value::Number(40049.0)));
        assert_eq!(eval("=SUM(B2:C3)"), Some(Value::Number(250.0)), "text in a range is skipped");
        assert_eq!(eval("=AVERAGE(B2,C2)"), Some(Value::Number(125.0)));
        assert_eq!(eval("=ROUND(C2/3, 2)"), Some(Value::Number(16.67)));
        assert_eq!(eval("=IF(B3>0, C2/B3, \"none\")"), Some(Value::Text("none".into())));
        assert_eq!(eval("=C2/B3"), Some(Value::Error), "division by zero");
        assert_eq!(eval("=C3&\" state\""), Some(Value::Text("Kano state".into())));
        assert_eq!(eval("=50%"), Some(Value::Number(0.5)));
        assert_eq!(eval("=MAX(B2:B3)-MIN(B2:B3)"), Some(Value::Number(200.0)));
    }

    #[test]
    fn the_rest_is_left_alone() {
        for f in ["=VLOOKUP(A1,B:C,2)", "=Sheet2!A1*2", "=SUM(A1:A1", "=Rate*2", "=1+", "=INDIRECT(\"A1\")"] {
            assert_eq!(eval(f), None, "{f}");
        }
        let deep = format!("={}1{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(eval(&deep), None, "nesting is bounded");
        assert_eq!(eval("=SUM(A1:XFD1048576)"), None, "a range past the cap");
    }
}
