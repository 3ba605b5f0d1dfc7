//! Live sources through the real binary: an SQLite file made from the
//! project's generated facility data, connected read-only, joined in one
//! query with an uploaded population CSV — equal to the same computation on
//! the files; writes and the database's escape hatches refused; the file
//! never written; a source gone is a clear error while the files still work.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{ok, quarry};

use serde_json::Value;

pub(crate) fn err(o: &Output) -> String {
    assert!(!o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The generated facility CSV's rows (`state,lga,facility,month,tested,positive`; no quoting).
pub(crate) fn csv_rows(csv: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(csv).unwrap();
    text.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect()
}

/// (positive, tested) per state, summed from those rows.
pub(crate) fn by_state(rows: &[Vec<String>]) -> BTreeMap<String, (i64, i64)> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in rows {
        let e = out.entry(r[0].clone()).or_default();
        e.0 += r[5].parse::<i64>().unwrap();
        e.1 += r[4].parse::<i64>().unwrap();
    }
    out
}

/// Ask `question` of a fake model that runs `sql` and answers `answer`
/// (`--json`, no Python, plus `extra` flags): the model, to read what it was
/// sent, and the command's output.
pub(crate) fn ask_scripted(
    dir: &Path,
    question: &str,
    sql: &str,
    answer: &str,
    extra: &[&str],
) -> (quarry_fake_llm::FakeLlm, Output) {
    use quarry_fake_llm::{FakeLlm, Reply, Script};
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", serde_json::json!({"sql": sql})),
        Reply::tool("final_answer", serde_json::json!({"answer": answer})),
    ]));
    let url = fake.openai_url();
    let mut args = vec!["ask", question, "--json", "--llm-base-url", &url, "--llm-model", "m", "--no-python"];
    args.extend_from_slice(extra);
    let out = quarry(dir, &args);
    (fake, out)
}

/// The generated facility data as `DIR/field.db` (and its rows), as a field app would export it.
fn field_db(dir: &Path) -> (std::path::PathBuf, Vec<Vec<String>>) {
    let csv = dir.join("facility_months.csv");
    quarry_testdata::anomalies::write_facility_months(&csv, false).unwrap();
    let db = dir.join("field.db");
    let rows = sqlite_from_csv(&csv, &db);
    (db, rows)
}

/// The facility CSV as an SQLite table, as a field app would export it.
fn sqlite_from_csv(csv: &Path, db: &Path) -> Vec<Vec<String>> {
    let rows = csv_rows(csv);
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "CREATE TABLE facility_months (state TEXT, lga TEXT, facility TEXT, month TEXT, tested INTEGER, positive INTEGER)",
    )
    .unwrap();
    for r in &rows {
        conn.execute(
            "INSERT INTO facility_months VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![r[0], r[1], r[2], r[3], r[4].parse::<i64>().unwrap(), r[5].parse::<i64>().unwrap()],
        )
        .unwrap();
    }
    rows
}

#[test]
fn an_sqlite_source_joins_an_uploaded_file_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (db, rows) = field_db(dir);
    let pop = dir.join("population_2024.csv");
    quarry_testdata::write_population_csv(&pop).unwrap();
    ok(&quarry(dir, &["load", "population_2024.csv"]));
    let before = std::fs::read(&db).unwrap();

    assert!(err(&quarry(dir, &["connect", "field", "sqlite:/nowhere/app.db"]))
        .contains("no SQLite file at /nowhere/app.db"));
    let url = format!("sqlite:{}", db.display());
    let added = quarry(dir, &["connect", "field", &url]);
    assert_eq!(ok(&added).trim(), "field.facility_months");
    assert!(String::from_utf8_lossy(&added.stderr).contains("read-only"));
    assert!(ok(&quarry(dir, &["connect", "--list"])).contains("field  sqlite"));

    // TPR by state from the live table, joined with the uploaded population, in one query.
    let sql = "SELECT f.state, sum(f.positive) AS positive, sum(f.tested) AS tested, max(p.population_2024_projected) AS population \
               FROM field.facility_months f JOIN population_2024 p ON p.state = f.state GROUP BY f.state ORDER BY f.state";
    let out = ok(&quarry(dir, &["sql", "-q", sql, "--format", "json"]));
    let got: Vec<Value> = serde_json::from_str(&out).unwrap();
    let want = by_state(&rows);
    let pops: BTreeMap<String, i64> = std::fs::read_to_string(&pop)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (state, rest) = l.split_once(",\"").unwrap();
            (state.to_string(), rest.split('"').next().unwrap().replace(',', "").parse().unwrap())
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{out}");
    for g in &got {
        let state = g["state"].as_str().unwrap();
        assert_eq!((g["positive"].as_i64().unwrap(), g["tested"].as_i64().unwrap()), want[state], "{state}");
        assert_eq!(g["population"].as_i64().unwrap(), pops[state], "{state}");
    }

    // A scan needing no column (count(*)) works too.
    let n: Vec<Value> = serde_json::from_str(&ok(&quarry(
        dir,
        &["sql", "-q", "SELECT count(*) AS n FROM field.facility_months", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(n[0]["n"].as_u64().unwrap() as usize, rows.len());

    // Writes and SQLite's own escape hatches are refused; the file is never written.
    for (attack, why) in [
        ("DELETE FROM field.facility_months", "refused (not_a_query)"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "refused (not_a_query)"),
        ("SELECT * FROM field.facility_months; DROP TABLE field.facility_months", "refused"),
        ("SELECT load_extension('/tmp/evil.so')", "Invalid function 'load_extension'"),
        ("SELECT sqlite_version()", "Invalid function 'sqlite_version'"),
    ] {
        let e = err(&quarry(dir, &["sql", "-q", attack]));
        assert!(e.contains(why), "{attack}: {e}");
    }
    // Only the needed columns and rows leave the database: the pushed-down SQL.
    let plan = ok(&quarry(
        dir,
        &["sql", "-q", "EXPLAIN SELECT facility FROM field.facility_months WHERE tested > 800 LIMIT 3"],
    ));
    assert!(plan.contains(r#"SqlExec sql=SELECT facility_months.facility FROM "main".facility_months WHERE (facility_months.tested > 800) LIMIT 3"#), "{plan}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "the SQLite file is unchanged");
    assert!(!dir.join("field.db-wal").exists(), "no write-ahead log: the file was opened read-only");

    // A snapshot keeps what the database held; the next one is a new version.
    let kano = rows.iter().filter(|r| r[0] == "Kano").count();
    let snap = quarry(dir, &["snapshot", "field.facility_months", "--where", "state = 'Kano'"]);
    ok(&snap);
    assert!(String::from_utf8_lossy(&snap.stderr).contains(&format!("{kano} rows → table field_facility_months")));
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM facility_months WHERE state = 'Kano' AND month = '2024-01-01'", [])
        .unwrap();
    ok(&quarry(dir, &["snapshot", "field.facility_months", "--where", "state = 'Kano'"]));
    let count = |q: &str| -> i64 {
        let v: Vec<Value> = serde_json::from_str(&ok(&quarry(dir, &["sql", "-q", q, "--format", "json"]))).unwrap();
        v[0]["n"].as_i64().unwrap()
    };
    assert_eq!(
        count("SELECT count(*) AS n FROM versions.field_facility_months_v1"),
        kano as i64,
        "the first snapshot stays"
    );
    assert!(count("SELECT count(*) AS n FROM field_facility_months") < kano as i64, "the latest is the database now");
    let too_many = err(&quarry(dir, &["snapshot", "field.facility_months", "--name", "all_rows", "--max-rows", "5"]));
    assert!(too_many.contains("more than 5 rows — nothing written"), "{too_many}");
    assert!(
        err(&quarry(dir, &["snapshot", "field.facility_months", "--where", "1=1; DROP TABLE x"])).contains("refused")
    );

    // A saved analysis reads the live table like any other: run again with another value, with no
    // model, it answers from what the database holds now.
    let sum_sql = "SELECT sum(positive) AS n FROM field.facility_months WHERE state = 'Kano'";
    let extra = ["--all-tables", "--save-as", "live_positives", "--param", "state=state"];
    let (fake, saved) = ask_scripted(dir, "Positives in Kano?", sum_sql, "{n} positives.", &extra);
    ok(&saved);
    let live_sum = |state: &str| -> i64 {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("SELECT sum(positive) FROM facility_months WHERE state = ?1", [state], |r| r.get(0)).unwrap()
    };
    let run = |state: &str| -> Value {
        let param = format!("state={state}");
        serde_json::from_str(&ok(&quarry(dir, &["analysis", "run", "live_positives", "--param", &param, "--json"])))
            .unwrap()
    };
    let other = rows.iter().map(|r| r[0].as_str()).find(|s| *s != "Kano").unwrap();
    assert_eq!(run(other)["table"]["rows"][0][0], serde_json::json!(live_sum(other)));
    let deleted = format!("DELETE FROM facility_months WHERE state = '{other}' AND month = '2024-01-01'");
    assert!(rusqlite::Connection::open(&db).unwrap().execute(&deleted, []).unwrap() > 0);
    let now = run(other);
    assert_eq!(now["table"]["rows"][0][0], serde_json::json!(live_sum(other)), "read live, not remembered");
    assert!(now["data_versions"][0]["content_hash"].as_str().unwrap().starts_with("live@unix:"), "{now}");
    assert_eq!(fake.requests().len(), 2, "analyses run with no model");

    // The source gone: a clear error naming it; the uploaded files still answer.
    std::fs::rename(&db, dir.join("moved.db")).unwrap();
    let gone = err(&quarry(dir, &["sql", "-q", "SELECT count(*) FROM field.facility_months"]));
    assert!(gone.contains("connection field") && gone.contains("no SQLite file"), "{gone}");
    ok(&quarry(dir, &["sql", "-q", "SELECT count(*) FROM population_2024"]));
    ok(&quarry(dir, &["connect", "--remove", "field"]));
    assert!(String::from_utf8_lossy(&quarry(dir, &["connect", "--list"]).stderr).contains("no connections yet"));
}

/// An SQLite table with no rows yet has the columns it declares (the
/// provider learns columns from rows): a query over it answers no rows.
#[test]
fn an_empty_sqlite_table_keeps_its_declared_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("app.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE visits (id INTEGER PRIMARY KEY, facility VARCHAR(40), seen DATE, fee REAL)")
        .unwrap();
    ok(&quarry(dir, &["connect", "app", &format!("sqlite:{}", db.display())]));
    let stored = std::fs::read_to_string(dir.join("quarry-data/sources/app.json")).unwrap();
    for col in [r#"["id","integer"]"#, r#"["facility","text"]"#, r#"["seen","date"]"#, r#"["fee","float"]"#] {
        assert!(stored.contains(col), "{col} in {stored}");
    }
    let n = ok(&quarry(dir, &["sql", "-q", "SELECT count(*) AS n FROM app.visits", "--format", "csv"]));
    assert_eq!(n.trim(), "n\n0");
    let sql = "SELECT facility, sum(fee) AS fees FROM app.visits WHERE id > 3 GROUP BY facility";
    assert_eq!(ok(&quarry(dir, &["sql", "-q", sql, "--format", "csv"])).trim(), "facility,fees");
    let e = err(&quarry(dir, &["sql", "-q", "SELECT nope FROM app.visits"]));
    assert!(e.contains("nope"), "{e}");
    // Once it has rows, the provider reads them as usual.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("INSERT INTO visits VALUES (7, 'PHC Dala 1', '2024-01-01', 2.5)", [])
        .unwrap();
    let one = ok(&quarry(dir, &["sql", "-q", sql, "--format", "csv"]));
    assert_eq!(one.trim(), "facility,fees\nPHC Dala 1,2.5");
}

/// A real PostgreSQL for one test: `initdb` in a temporary directory (as the
/// `postgres` user when the tests run as root: it refuses root), password
/// logins over TCP on a free loopback port, every statement logged;
/// stopped when dropped.
pub(crate) struct Postgres {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    pub(crate) log: std::path::PathBuf,
    port: u16,
    bin: std::path::PathBuf,
    as_postgres: bool,
}

pub(crate) const PG_PASSWORD: &str = "canary-pg-9f3e1c";

impl Postgres {
    pub(crate) fn start() -> Option<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").exists());
        let Some(bin) = bin else {
            assert!(std::env::var_os("QUARRY_REQUIRE_SERVICES").is_none(), "PostgreSQL is not installed");
            eprintln!("skipped: PostgreSQL is not installed (Debian: apt-get install postgresql)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = nix_is_root();
        let (data, log, pw) = (dir.path().join("pg"), dir.path().join("pg.log"), dir.path().join("pw"));
        std::fs::write(&pw, PG_PASSWORD).unwrap();
        if as_postgres {
            let ok = Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status().unwrap();
            assert!(ok.success());
        }
        let pg = Postgres { _dir: dir, data, log, port: free_port(), bin, as_postgres };
        let init =
            pg.run("initdb", &["-U", "quarry", "--auth-local=trust", "--auth-host=scram-sha-256"], &[&pg.data], &pw);
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
        pg.start_again();
        Some(pg)
    }

    /// Start the server (again, after [`Postgres::stop`]), on the same port.
    pub(crate) fn start_again(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c log_statement=all",
            self.port,
            self.data.parent().unwrap().display()
        );
        let start = self.run_plain(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-l",
                &self.log.display().to_string(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
        assert!(start.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&start.stderr));
    }

    fn command(&self, tool: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        }
    }

    fn run(&self, tool: &str, args: &[&str], dirs: &[&Path], pwfile: &Path) -> Output {
        let mut c = self.command(tool);
        c.args(args).arg(format!("--pwfile={}", pwfile.display())).arg("-D").args(dirs);
        c.output().unwrap()
    }

    fn run_plain(&self, tool: &str, args: &[&str]) -> Output {
        self.command(tool).args(args).output().unwrap()
    }

    /// Run SQL as the superuser over TCP (with the password).
    pub(crate) fn psql(&self, sql: &str) {
        let o = self.psql_with("", sql);
        assert!(o.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// Run SQL as the superuser in a session started with libpq `options`.
    fn psql_with(&self, options: &str, sql: &str) -> Output {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "quarry",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", PG_PASSWORD)
            .env("PGOPTIONS", options)
            .output()
            .unwrap()
    }

    pub(crate) fn url(&self, password: &str, db: &str) -> String {
        format!("postgres://quarry:{password}@127.0.0.1:{}/{db}?sslmode=disable", self.port)
    }

    pub(crate) fn stop(&self) {
        let _ = self.run_plain("pg_ctl", &["-D", &self.data.display().to_string(), "-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn nix_is_root() -> bool {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_postgres_source_is_read_only_pushes_work_down_and_never_shows_its_password() {
    let Some(pg) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let csv = dir.join("facility_months.csv");
    quarry_testdata::anomalies::write_facility_months(&csv, false).unwrap();
    pg.psql("CREATE TABLE facility_months (state text, lga text, facility text, month text, tested int, positive int)");
    pg.psql(&format!("\\copy facility_months FROM '{}' CSV HEADER", csv.display()));
    pg.psql("CREATE TABLE facilities (facility text PRIMARY KEY, state text)");
    pg.psql("CREATE TABLE visits (id int PRIMARY KEY, facility text REFERENCES facilities (facility))");
    pg.psql("ANALYZE");
    let pop = dir.join("population_2024.csv");
    quarry_testdata::write_population_csv(&pop).unwrap();
    ok(&quarry(dir, &["load", "population_2024.csv"]));

    // Each failure its own clear message; the password never in it; nothing saved.
    let wrong = err(&quarry(dir, &["connect", "dhis", &pg.url("not-the-password", "postgres")]));
    assert!(wrong.contains("authentication failed for user quarry"), "{wrong}");
    assert!(!wrong.contains("not-the-password"), "{wrong}");
    let missing = err(&quarry(dir, &["connect", "dhis", &pg.url(PG_PASSWORD, "nope")]));
    assert!(missing.contains("database nope does not exist"), "{missing}");
    let closed = format!("postgres://quarry:x@127.0.0.1:{}/postgres?sslmode=disable", free_port());
    assert!(err(&quarry(dir, &["connect", "dhis", &closed])).contains("host unreachable"));
    assert!(!dir.join("quarry-data/connections.json").exists());

    let added = quarry(dir, &["connect", "dhis", &pg.url(PG_PASSWORD, "postgres")]);
    assert_eq!(ok(&added).trim(), "dhis.facilities\ndhis.facility_months\ndhis.visits");
    let list = ok(&quarry(dir, &["connect", "--list"]));
    assert!(list.contains("postgres://quarry:***@127.0.0.1") && !list.contains(PG_PASSWORD), "{list}");
    assert!(!String::from_utf8_lossy(&added.stderr).contains(PG_PASSWORD));

    // The join of the live table with the uploaded file equals the files' own sums.
    let sql = "SELECT f.state, sum(f.positive) AS positive, sum(f.tested) AS tested, max(p.population_2024_projected) AS population \
               FROM dhis.facility_months f JOIN population_2024 p ON p.state = f.state GROUP BY f.state ORDER BY f.state";
    let got: Vec<Value> = serde_json::from_str(&ok(&quarry(dir, &["sql", "-q", sql, "--format", "json"]))).unwrap();
    let rows = csv_rows(&csv);
    let want = by_state(&rows);
    assert_eq!(got.len(), want.len());
    for g in &got {
        let state = g["state"].as_str().unwrap();
        assert_eq!((g["positive"].as_i64().unwrap(), g["tested"].as_i64().unwrap()), want[state], "{state}");
        assert!(g["population"].as_i64().unwrap() > 1_000_000);
    }

    // Pushdown, in PostgreSQL's own log: only the column and rows asked for.
    ok(&quarry(dir, &["sql", "-q", "SELECT facility FROM dhis.facility_months WHERE tested > 850"]));
    let log = std::fs::read_to_string(&pg.log).unwrap();
    for pushed in [
        // The join read three of the six columns …
        // (each scan also carries the row cap, one past it: `LIMIT 20000001`) …
        r#"SELECT facility_months.state, facility_months.tested, facility_months.positive FROM "public".facility_months LIMIT 20000001"#,
        // … and the filter ran in PostgreSQL.
        r#"SELECT facility_months.facility FROM "public".facility_months WHERE (facility_months.tested > 850) LIMIT 20000001"#,
    ] {
        assert!(log.lines().any(|l| l.ends_with(pushed)), "not in PostgreSQL's log: {pushed}\n{log}");
    }

    // The row cap goes to PostgreSQL as the scan's LIMIT (one past it); reaching it fails the query
    // instead of answering from part of the table, and a query reading fewer rows is untouched.
    let cap = (rows.len() / 2).to_string();
    let capped =
        err(&quarry(dir, &["sql", "--max-live-rows", &cap, "-q", "SELECT count(*) FROM dhis.facility_months"]));
    assert!(capped.contains(&format!("more than {cap} rows of the live table dhis.facility_months")), "{capped}");
    assert!(capped.contains("quarry snapshot dhis.facility_months"), "{capped}");
    let log = std::fs::read_to_string(&pg.log).unwrap();
    let sent = format!("LIMIT {}", rows.len() / 2 + 1);
    assert!(log.lines().any(|l| l.contains("FROM \"public\".facility_months") && l.ends_with(&sent)), "{log}");
    let over = rows.iter().filter(|r| r[4].parse::<i64>().unwrap() > 850).count();
    assert!(over < rows.len() / 2);
    let few = "SELECT count(*) AS n FROM dhis.facility_months WHERE tested > 850";
    let counted = ok(&quarry(dir, &["sql", "--max-live-rows", &cap, "-q", few, "--format", "csv"]));
    assert_eq!(counted.lines().nth(1), Some(over.to_string().as_str()), "{counted}");

    // The read-only session is a wall of its own: with the guard out of the way (psql, as the
    // superuser, in a session with the options every Quarry session starts with) writes fail.
    let options = quarry_engine::sources::postgres_session_options(&quarry_sandbox::Limits::default());
    for write in [
        "DELETE FROM facility_months",
        "UPDATE facility_months SET tested = 0",
        "CREATE TABLE pwned (x int)",
        "INSERT INTO facility_months SELECT * FROM facility_months LIMIT 1",
        "TRUNCATE facility_months",
    ] {
        let o = pg.psql_with(&options, write);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains("read-only transaction"), "{write}: {e}");
    }
    assert!(pg.psql_with("", "SELECT count(*) FROM facility_months").status.success());
    assert!(pg.psql_with(&options, "SHOW statement_timeout").status.success());

    // Writes, PostgreSQL's escape hatches: refused or not even nameable.
    for (attack, why) in [
        ("DELETE FROM dhis.facility_months", "refused (not_a_query)"),
        ("COPY dhis.facility_months TO PROGRAM 'touch /tmp/pwned'", "refused"),
        ("SELECT pg_read_file('/etc/passwd')", "Invalid function 'pg_read_file'"),
        ("SELECT lo_export(1, '/tmp/x')", "Invalid function 'lo_export'"),
        ("SELECT * FROM dhis.pg_catalog.pg_authid", "not found"),
    ] {
        let e = err(&quarry(dir, &["sql", "-q", attack]));
        assert!(e.contains(why), "{attack}: {e}");
    }
    // Asked about in plain language: the password reaches neither the model nor the answer.
    let count = "SELECT count(*) AS n FROM dhis.facility_months";
    let exports = ["--all-tables", "--export", "report.html"];
    let (fake, asked) = ask_scripted(dir, "How many reports?", count, "{n} reports.", &exports);
    // Nor any export: the report, a notebook (which reads data versions), the table.
    for name in ["report.ipynb", "answer.xlsx", "answer.json"] {
        let (_, out) =
            ask_scripted(dir, "How many reports?", count, "{n} reports.", &["--all-tables", "--export", name]);
        ok(&out);
        assert!(
            !std::fs::read(dir.join(name)).unwrap().windows(PG_PASSWORD.len()).any(|w| w == PG_PASSWORD.as_bytes()),
            "{name}"
        );
    }
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(report.contains("dhis.facility_months") && !report.contains(PG_PASSWORD));
    let answer = ok(&asked);
    let parsed: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(parsed["answer"], format!("{} reports.", rows.len()), "{answer}");
    assert!(!answer.contains(PG_PASSWORD) && !String::from_utf8_lossy(&asked.stderr).contains(PG_PASSWORD));
    assert!(
        fake.requests().iter().all(|r| !r.body.to_string().contains(PG_PASSWORD)),
        "the password reached the model"
    );
    // The keys and row estimates of PostgreSQL's catalog reach the model; no value does.
    let context = fake.requests()[0].body.to_string();
    assert!(context.contains("primary key (id); facility refers to dhis.facilities.facility"), "{context}");
    assert!(context.contains(&format!("rows_estimate=\\\"{}\\\"", rows.len())), "{context}");
    let stored = std::fs::read_to_string(dir.join("quarry-data/connections.json")).unwrap();
    assert!(stored.contains(PG_PASSWORD), "stored for the owner only (0600)");

    // The database goes down: a clear error naming it; the files still answer.
    pg.stop();
    let down = err(&quarry(dir, &["sql", "-q", "SELECT count(*) FROM dhis.facility_months"]));
    assert!(down.contains("connection dhis") && down.contains("host unreachable"), "{down}");
    assert!(!down.contains(PG_PASSWORD));
    ok(&quarry(dir, &["sql", "-q", "SELECT count(*) FROM population_2024"]));
}

/// The analyst sees a live table's name and columns (never its values in
/// `strict`), queries it, and the answer records that it read live data.
#[test]
fn the_analyst_answers_from_a_live_table_without_seeing_its_values() {
    use serde_json::json;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (db, rows) = field_db(dir);
    let canary = "CANARY-FACILITY-7731";
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE facility_months SET facility = ?1 WHERE rowid = 1", [canary])
        .unwrap();
    ok(&quarry(dir, &["connect", "field", &format!("sqlite:{}", db.display())]));
    let sql = "SELECT state, sum(positive) AS positive FROM field.facility_months GROUP BY state ORDER BY 2 DESC";
    let said = "{row 1 state} had the most positives ({row 1 positive}).";
    let (fake, out) = ask_scripted(dir, "Which state had the most positives?", sql, said, &[]);
    let answer: Value = serde_json::from_str(&ok(&out)).unwrap();
    let sums = by_state(&rows);
    let (top, (n, _)) = sums.iter().max_by_key(|(_, (p, _))| *p).unwrap();
    assert!(answer["answer"].as_str().unwrap().starts_with(&format!("{top} had the most positives")), "{answer}");
    assert_eq!(answer["table"]["rows"][0][1], json!(n));
    let dv = &answer["provenance"]["data_versions"][0];
    assert_eq!(dv["table"], "field.facility_months");
    assert!(dv["content_hash"].as_str().unwrap().starts_with("live@unix:"), "{dv}");
    let sent: Vec<String> = fake.requests().iter().map(|r| r.body.to_string()).collect();
    assert!(sent[0].contains("field.facility_months") && sent[0].contains("read from the database when queried"));
    assert!(sent.iter().all(|b| !b.contains(canary) && !b.contains("PHC ")), "no value reached the model");
}

/// A database with hundreds of tables: the analyst's context describes the
/// ones the question is about and stays within its budget (the rest named
/// in a short line), introspected once when connected.
#[test]
fn a_large_schema_gives_the_analyst_the_tables_the_question_is_about() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("hmis.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut ddl = String::from("BEGIN;");
    for i in 0..400 {
        ddl.push_str(&format!(
            "CREATE TABLE form_{i:03} (org_unit TEXT, period TEXT, element_{i:03}_value REAL, comment_{i:03} TEXT); \
             INSERT INTO form_{i:03} VALUES ('ou{i}', '2024-01', {i}.5, 'ok');"
        ));
    }
    ddl.push_str("CREATE TABLE states (state TEXT PRIMARY KEY); INSERT INTO states VALUES ('Kano'), ('Oyo');");
    ddl.push_str("CREATE TABLE malaria_cases (state TEXT REFERENCES states (state), month TEXT, confirmed INTEGER); ");
    ddl.push_str("INSERT INTO malaria_cases VALUES ('Kano', '2024-01', 40), ('Kano', '2024-02', 2), ('Oyo', '2024-01', 7); COMMIT;");
    conn.execute_batch(&ddl).unwrap();
    drop(conn);
    let listed = ok(&quarry(dir, &["connect", "hmis", &format!("sqlite:{}", db.display())]));
    assert_eq!(listed.lines().count(), 402);
    let kano = "SELECT sum(confirmed) AS n FROM hmis.malaria_cases WHERE state = 'Kano'";
    let question = "How many confirmed malaria cases in Kano?";
    let (fake, asked) = ask_scripted(dir, question, kano, "{n} confirmed malaria cases in Kano.", &[]);
    let parsed: Value = serde_json::from_str(&ok(&asked)).unwrap();
    assert_eq!(parsed["answer"], "42 confirmed malaria cases in Kano.");
    let first = fake.requests()[0].body.to_string();
    assert!(first.contains("hmis.malaria_cases") && first.contains("confirmed"), "the table asked about is described");
    let described = (0..400).filter(|i| first.contains(&format!("element_{i:03}_value"))).count();
    assert_eq!(described, 0, "tables the question does not touch are named, not described");
    assert!(first.contains("(+ 401 more table(s) not shown: hmis.form_000, hmis.form_001"), "named, in a short line");
    assert!(first.contains("and 341 more (information_schema.tables lists all)"));
    assert!(first.contains(r#"rows_estimate=\"3\""#) && first.contains("state refers to hmis.states.state"), "{first}");
    assert!(first.len() < 20_000, "the context stays small: {} bytes", first.len());
    let all = "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'hmis'";
    assert_eq!(
        ok(&quarry(dir, &["sql", "-q", all, "--format", "csv"])).lines().nth(1),
        Some("402"),
        "as the line says"
    );
}
