//! Load one file into a catalog in this process, no worker around it, and
//! say how long it took: for profiling ingest alone (`perf record -- cargo
//! run --release -p quarry-ingest --example load -- FILE DIR`).
fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(file), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: load FILE CATALOG_DIR");
        std::process::exit(2);
    };
    let start = std::time::Instant::now();
    let mut catalog = quarry_ingest::catalog::Catalog::open(std::path::Path::new(&dir)).expect("catalog");
    let opts = quarry_ingest::IngestOptions::default();
    match catalog.load(std::path::Path::new(&file), &opts, &quarry_ingest::Quiet) {
        Ok(r) => println!("{} table(s) in {:.3} s", r.tables.len(), start.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
