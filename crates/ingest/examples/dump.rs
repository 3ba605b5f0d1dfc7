use calamine::{open_workbook_auto, Data, Reader};
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let mut wb = open_workbook_auto(&p).unwrap();
    for name in wb.sheet_names() {
        let r = wb.worksheet_range(&name).unwrap();
        println!("== {name} start={:?} size={:?}", r.start(), r.get_size());
        let rows: Vec<_> = r.rows().collect();
        let n = rows.len();
        for (i, row) in rows.iter().enumerate() {
            if i < 9 || i + 4 > n {
                let v: Vec<String> = row
                    .iter()
                    .map(|c| match c {
                        Data::Empty => "·".into(),
                        Data::String(s) => format!("{s:?}"),
                        o => format!("{o:?}"),
                    })
                    .collect();
                println!("{i}: {}", v.join(" | "));
            }
        }
    }
}
