//! Functions analysts reach for that DataFusion lacks, added through its
//! `ScalarUDFImpl` trait. Each is documented in [`FUNCTIONS`], which the
//! agent puts in the model's context.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, Float64Array, StringArray};
use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

pub use quarry_types::sql::FUNCTIONS;

type Kernel = fn(&[ArrayRef]) -> Result<ArrayRef>;

/// A scalar function whose arguments are all cast to one type. Names are
/// unique, so equality and hashing go by name.
#[derive(Debug)]
struct Udf {
    name: &'static str,
    arity: usize,
    arg: DataType,
    ret: DataType,
    signature: Signature,
    kernel: Kernel,
}

impl PartialEq for Udf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Udf {}

impl std::hash::Hash for Udf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Udf {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.ret.clone())
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != self.arity {
            return plan_err!("{} takes {} argument(s), got {}", self.name, self.arity, arg_types.len());
        }
        for t in arg_types {
            if !can_cast_types(t, &self.arg) {
                return plan_err!("{} needs {} arguments; got {t}", self.name, self.arg);
            }
        }
        Ok(vec![self.arg.clone(); self.arity])
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays =
            args.args.into_iter().map(|a| a.into_array(args.number_rows)).collect::<Result<Vec<ArrayRef>>>()?;
        for a in &arrays {
            if a.data_type() != &self.arg {
                return exec_err!("{}: argument of type {} was not coerced", self.name, a.data_type());
            }
        }
        Ok(ColumnarValue::Array((self.kernel)(&arrays)?))
    }
}

fn udf(name: &'static str, arity: usize, arg: DataType, ret: DataType, kernel: Kernel) -> ScalarUDF {
    let signature = Signature::user_defined(Volatility::Immutable);
    ScalarUDF::new_from_impl(Udf { name, arity, arg, ret, signature, kernel })
}

/// Every function of this module, ready to register on a session.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        udf("safe_div", 2, DataType::Float64, DataType::Float64, |a| ratio(a, 1.0)),
        udf("pct", 2, DataType::Float64, DataType::Float64, |a| ratio(a, 100.0)),
        udf("excel_date", 1, DataType::Float64, DataType::Date32, excel_date),
        udf("year_month", 1, DataType::Date32, DataType::Utf8, |a| {
            date_label(a, |d| format!("{}-{:02}", d.year(), d.month()))
        }),
        udf("year_quarter", 1, DataType::Date32, DataType::Utf8, |a| {
            date_label(a, |d| format!("{}-Q{}", d.year(), d.month0() / 3 + 1))
        }),
    ]
}

fn ratio(args: &[ArrayRef], scale: f64) -> Result<ArrayRef> {
    let a = args[0].as_primitive::<Float64Type>();
    let b = args[1].as_primitive::<Float64Type>();
    let out: Float64Array = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if y != 0.0 && y.is_finite() => Some(scale * x / y),
            _ => None,
        })
        .collect();
    Ok(Arc::new(out))
}

/// Days from 1970-01-01 of an Excel serial day (1900 date system, whose
/// serial 60 is the non-existent 1900-02-29).
pub fn excel_serial_to_days(serial: f64) -> Option<i32> {
    if !serial.is_finite() || !(1.0..2_958_466.0).contains(&serial) {
        return None;
    }
    let day = serial.floor() as i64;
    let days = match day {
        60 => return None,
        d if d < 60 => d - 25_568,
        d => d - 25_569,
    };
    i32::try_from(days).ok()
}

fn excel_date(args: &[ArrayRef]) -> Result<ArrayRef> {
    let a = args[0].as_primitive::<Float64Type>();
    let out: Date32Array = a.iter().map(|v| v.and_then(excel_serial_to_days)).collect();
    Ok(Arc::new(out))
}

fn date_label(args: &[ArrayRef], f: fn(NaiveDate) -> String) -> Result<ArrayRef> {
    let a = args[0].as_primitive::<Date32Type>();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let out: StringArray =
        a.iter().map(|v| v.and_then(|d| epoch.checked_add_signed(chrono::Duration::days(d as i64))).map(f)).collect();
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_function_is_registered_and_no_other() {
        let mut registered: Vec<String> = all().iter().map(|f| f.name().to_string()).collect();
        let mut documented: Vec<String> =
            FUNCTIONS.iter().map(|(sig, _)| sig.split('(').next().unwrap_or_default().to_string()).collect();
        registered.sort();
        documented.sort();
        assert_eq!(registered, documented);
    }

    #[test]
    fn excel_serials_match_excel() {
        let day = |s| {
            excel_serial_to_days(s)
                .map(|d| NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(d as i64))
        };
        assert_eq!(day(1.0), NaiveDate::from_ymd_opt(1900, 1, 1));
        assert_eq!(day(59.0), NaiveDate::from_ymd_opt(1900, 2, 28));
        assert_eq!(day(60.0), None);
        assert_eq!(day(61.0), NaiveDate::from_ymd_opt(1900, 3, 1));
        assert_eq!(day(45292.0), NaiveDate::from_ymd_opt(2024, 1, 1));
        assert_eq!(day(45292.75), NaiveDate::from_ymd_opt(2024, 1, 1));
        assert_eq!(day(0.0), None);
        assert_eq!(day(f64::NAN), None);
    }
}
