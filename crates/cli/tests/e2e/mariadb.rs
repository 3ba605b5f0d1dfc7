//! A MySQL-family source through the real binary, on a real MariaDB started
//! for the test: each failure its own message, the password never shown,
//! a join with an uploaded file equal to the files' own sums, work pushed
//! down (in the server's general log), sessions read-only and time-limited
//! on the server side, MySQL's escape hatches out of reach.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{ok, quarry};
use crate::sources::{by_state, csv_rows, err, free_port, nix_is_root};

const MY_PASSWORD: &str = "canary-my-51d0ab";

/// A MariaDB for one test: `mariadb-install-db` in a temporary directory
/// (the server runs as the `mysql` user when the tests run as root), TCP on
/// a free loopback port, the general log on; stopped when dropped.
struct MariaDb {
    dir: tempfile::TempDir,
    port: u16,
    child: std::process::Child,
}

impl MariaDb {
    fn start() -> Option<MariaDb> {
        let installed = ["/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb"];
        if !installed.iter().all(|p| Path::new(p).exists()) {
            assert!(std::env::var_os("QUARRY_REQUIRE_SERVICES").is_none(), "MariaDB is not installed");
            eprintln!("skipped: MariaDB is not installed (Debian: apt-get install mariadb-server)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let user = if nix_is_root() { "mysql" } else { "" };
        if !user.is_empty() {
            assert!(Command::new("chown").args(["-R", user]).arg(dir.path()).status().unwrap().success());
        }
        let data = dir.path().join("db");
        let mut install = Command::new("mariadb-install-db");
        install.args(["--no-defaults", "--auth-root-authentication-method=socket", "--skip-test-db"]);
        install.arg(format!("--datadir={}", data.display()));
        if !user.is_empty() {
            install.arg(format!("--user={user}"));
        }
        let o = install.output().unwrap();
        assert!(o.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&o.stderr));
        let port = free_port();
        let p = |name: &str| dir.path().join(name).display().to_string();
        let mut server = Command::new("/usr/sbin/mariadbd");
        server.arg("--no-defaults").arg(format!("--datadir={}", data.display()));
        server.args([format!("--port={port}"), "--bind-address=127.0.0.1".into(), "--skip-name-resolve".into()]);
        server.args([format!("--socket={}", p("sock")), format!("--pid-file={}", p("pid"))]);
        server.args(["--general-log=1".into(), format!("--general-log-file={}", p("general.log"))]);
        server.arg(format!("--log-error={}", p("error.log")));
        if !user.is_empty() {
            server.arg(format!("--user={user}"));
        }
        let child = server.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        let db = MariaDb { dir, port, child };
        let ready = (0..300).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            db.client(&["-e", "SELECT 1"]).status.success()
        });
        let error_log = db.dir.path().join("error.log");
        assert!(ready, "MariaDB did not start: {}", std::fs::read_to_string(error_log).unwrap_or_default());
        Some(db)
    }

    /// The `mariadb` client as root over the socket.
    fn client(&self, args: &[&str]) -> Output {
        let sock = self.dir.path().join("sock");
        Command::new("mariadb")
            .args(["--no-defaults", "-u", "root"])
            .arg(format!("--socket={}", sock.display()))
            .args(args)
            .output()
            .unwrap()
    }

    fn sql(&self, sql: &str) -> String {
        let o = self.client(&["-N", "-e", sql]);
        assert!(o.status.success(), "{sql}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn url(&self, password: &str, db: &str) -> String {
        format!("mysql://quarry:{password}@127.0.0.1:{}/{db}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("general.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The generated facility rows as a MariaDB table, and the rows.
fn load_facility_months(db: &MariaDb, dir: &Path) -> (PathBuf, Vec<Vec<String>>) {
    let csv = dir.join("facility_months.csv");
    quarry_testdata::anomalies::write_facility_months(&csv, false).unwrap();
    let rows = csv_rows(&csv);
    let values: Vec<String> =
        rows.iter().map(|r| format!("('{}','{}','{}','{}',{},{})", r[0], r[1], r[2], r[3], r[4], r[5])).collect();
    db.sql(&format!(
        "CREATE TABLE hmis.facility_months (state varchar(64), lga varchar(64), facility varchar(128), \
         month varchar(16), tested int, positive int); INSERT INTO hmis.facility_months VALUES {}",
        values.join(",")
    ));
    (csv, rows)
}

#[test]
fn a_mariadb_source_is_read_only_on_the_server_pushes_work_down_and_never_shows_its_password() {
    let Some(mut db) = MariaDb::start() else { return };
    // A role that could write: the session, not the grant, keeps it read-only.
    db.sql(&format!(
        "CREATE DATABASE hmis; CREATE USER 'quarry'@'%' IDENTIFIED BY '{MY_PASSWORD}'; \
         GRANT SELECT, INSERT, UPDATE, DELETE, FILE ON *.* TO 'quarry'@'%'"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, rows) = load_facility_months(&db, dir);
    let pop = dir.join("population_2024.csv");
    quarry_testdata::write_population_csv(&pop).unwrap();
    ok(&quarry(dir, &["load", "population_2024.csv"]));

    let wrong = err(&quarry(dir, &["connect", "hmis", &db.url("not-the-password", "hmis")]));
    assert!(wrong.contains("authentication failed for user quarry"), "{wrong}");
    assert!(!wrong.contains("not-the-password"), "{wrong}");
    let missing = err(&quarry(dir, &["connect", "hmis", &db.url(MY_PASSWORD, "nope")]));
    assert!(missing.contains("database nope does not exist"), "{missing}");
    let closed = format!("mysql://quarry:x@127.0.0.1:{}/hmis", free_port());
    assert!(err(&quarry(dir, &["connect", "hmis", &closed])).contains("host unreachable"));
    assert!(!dir.join("quarry-data/connections.json").exists());

    let added = quarry(dir, &["connect", "hmis", &db.url(MY_PASSWORD, "hmis")]);
    assert_eq!(ok(&added).trim(), "hmis.facility_months");
    let list = ok(&quarry(dir, &["connect", "--list"]));
    assert!(list.contains("mysql://quarry:***@127.0.0.1") && !list.contains(MY_PASSWORD), "{list}");

    // Joined with the uploaded file: the files' own sums.
    let sql = "SELECT f.state, sum(f.positive) AS positive, sum(f.tested) AS tested, max(p.population_2024_projected) AS population \
               FROM hmis.facility_months f JOIN population_2024 p ON p.state = f.state GROUP BY f.state ORDER BY f.state";
    let got: Vec<Value> = serde_json::from_str(&ok(&quarry(dir, &["sql", "-q", sql, "--format", "json"]))).unwrap();
    let want = by_state(&rows);
    assert_eq!(got.len(), want.len());
    for g in &got {
        let state = g["state"].as_str().unwrap();
        assert_eq!((g["positive"].as_i64().unwrap(), g["tested"].as_i64().unwrap()), want[state], "{state}");
    }

    // Pushed down, in MariaDB's log: three of six columns for the join, the filter and the limit.
    let over = rows.iter().filter(|r| r[4].parse::<i64>().unwrap() > 850).count();
    let filtered = ok(&quarry(
        dir,
        &["sql", "-q", "SELECT facility FROM hmis.facility_months WHERE tested > 850", "--format", "csv"],
    ));
    assert_eq!(filtered.lines().count(), over + 1, "{filtered}");
    ok(&quarry(dir, &["sql", "-q", "SELECT facility FROM hmis.facility_months WHERE tested > 850 LIMIT 3"]));
    let log = db.log();
    for pushed in [
        "SELECT `facility_months`.`state`, `facility_months`.`tested`, `facility_months`.`positive` FROM `hmis`.`facility_months` LIMIT 20000001",
        "SELECT `facility_months`.`facility` FROM `hmis`.`facility_months` WHERE (`facility_months`.`tested` > 850) LIMIT 20000001",
        "WHERE (`facility_months`.`tested` > 850) LIMIT 3",
    ] {
        assert!(log.lines().any(|l| l.ends_with(pushed)), "not in MariaDB's log: {pushed}\n{log}");
    }
    // The row cap reaches MariaDB as the scan's LIMIT, one past it; reaching it fails the query.
    let capped =
        err(&quarry(dir, &["sql", "--max-live-rows", "40", "-q", "SELECT sum(tested) FROM hmis.facility_months"]));
    assert!(capped.contains("more than 40 rows of the live table hmis.facility_months"), "{capped}");
    assert!(db.log().lines().any(|l| l.ends_with("FROM `hmis`.`facility_months` LIMIT 41")), "{}", db.log());
    // Every session the pool opened started read-only and with a statement limit …
    assert!(log.contains("SET SESSION TRANSACTION READ ONLY"), "{log}");
    assert!(log.contains("SET SESSION max_statement_time ="), "{log}");
    // … which stops a write on this server, even for a role allowed to write.
    let blocked = db.client(&["-e", "SET SESSION TRANSACTION READ ONLY; DELETE FROM hmis.facility_months"]);
    assert!(String::from_utf8_lossy(&blocked.stderr).contains("READ ONLY transaction"), "{blocked:?}");

    // A text with a double quote is compared as written (the provider would strip it in SQL it sends).
    db.sql(r#"UPDATE hmis.facility_months SET facility = 'St "Mary" clinic' WHERE facility = (SELECT min(facility) FROM (SELECT facility FROM hmis.facility_months) x)"#);
    let quoted = ok(&quarry(
        dir,
        &[
            "sql",
            "-q",
            r#"SELECT count(*) AS n FROM hmis.facility_months WHERE facility = 'St "Mary" clinic'"#,
            "--format",
            "csv",
        ],
    ));
    let first = rows.iter().map(|r| &r[2]).min().unwrap();
    let months = rows.iter().filter(|r| &r[2] == first).count();
    assert_eq!(quoted.lines().nth(1), Some(months.to_string().as_str()), "{quoted}");
    // No rows still names its columns.
    let none = ok(&quarry(
        dir,
        &["sql", "-q", "SELECT state, tested FROM hmis.facility_months WHERE tested < 0", "--format", "csv"],
    ));
    assert_eq!(none.trim(), "state,tested");

    // A password kept in the environment: never stored, handed to the SQL worker for each query.
    let with_env = |args: &[&str], pw: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_quarry"));
        crate::common::clean_llm_env(&mut c).args(args).current_dir(dir).env_remove("HMIS_PW");
        if let Some(pw) = pw {
            c.env("HMIS_PW", pw);
        }
        c.output().unwrap()
    };
    let no_pw = format!("mysql://quarry@127.0.0.1:{}/hmis", db.port);
    ok(&with_env(&["connect", "hmis_env", &no_pw, "--password-env", "HMIS_PW"], Some(MY_PASSWORD)));
    let count = "SELECT count(*) AS n FROM hmis_env.facility_months";
    let counted = ok(&with_env(&["sql", "-q", count, "--format", "csv"], Some(MY_PASSWORD)));
    assert_eq!(counted.lines().nth(1), Some(rows.len().to_string().as_str()), "{counted}");
    assert!(err(&with_env(&["sql", "-q", count], None)).contains("$HMIS_PW, which is not set"));
    let snap = with_env(&["snapshot", "hmis_env.facility_months", "--where", "tested > 850"], Some(MY_PASSWORD));
    ok(&snap);
    let said = String::from_utf8_lossy(&snap.stderr);
    assert!(said.contains(&format!("{over} rows")), "{said}");
    let stored = std::fs::read_to_string(dir.join("quarry-data/connections.json")).unwrap();
    assert_eq!(stored.matches(MY_PASSWORD).count(), 1, "only the URL that holds it: {stored}");

    for (attack, why) in [
        ("DELETE FROM hmis.facility_months", "refused (not_a_query)"),
        ("SELECT LOAD_FILE('/etc/passwd')", "Invalid function 'load_file'"),
        ("SELECT * FROM hmis.facility_months INTO OUTFILE '/tmp/quarry-pwned'", "refused"),
        ("SELECT * FROM hmis.mysql.user", "not found"),
        ("SELECT * FROM mysql.user", "not found"),
    ] {
        let e = err(&quarry(dir, &["sql", "-q", attack]));
        assert!(e.contains(why), "{attack}: {e}");
        assert!(!e.contains(MY_PASSWORD), "{e}");
    }
    assert_eq!(db.sql("SELECT count(*) FROM hmis.facility_months").trim(), rows.len().to_string());

    // A table dropped after the connection was made: named as gone, the others still read.
    db.sql("CREATE TABLE hmis.stock (item varchar(20), qty int)");
    db.sql("CREATE TABLE hmis.facilities (facility varchar(128) PRIMARY KEY)");
    db.sql("CREATE TABLE hmis.visits (id int PRIMARY KEY, facility varchar(128), FOREIGN KEY (facility) REFERENCES hmis.facilities (facility))");
    ok(&quarry(dir, &["connect", "hmis", &db.url(MY_PASSWORD, "hmis")]));
    // Keys and row estimates from information_schema, kept with the tables.
    let kept: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("quarry-data/sources/hmis.json")).unwrap()).unwrap();
    let visits = kept.iter().find(|t| t["name"] == "hmis.visits").expect("visits kept");
    assert_eq!(visits["primary_key"], serde_json::json!(["id"]));
    assert_eq!(visits["references"], serde_json::json!([["facility", "facilities.facility"]]));
    let months = kept.iter().find(|t| t["name"] == "hmis.facility_months").expect("kept");
    assert!(months["rows_estimate"].as_u64().is_some_and(|n| n > 0), "{months}");
    db.sql("DROP TABLE hmis.stock");
    let gone = err(&quarry(dir, &["sql", "-q", "SELECT * FROM hmis.stock"]));
    assert!(gone.contains("table hmis.stock is no longer in the database"), "{gone}");
    ok(&quarry(dir, &["sql", "-q", "SELECT count(*) FROM hmis.facility_months"]));

    db.stop();
    let down = err(&quarry(dir, &["sql", "-q", "SELECT count(*) FROM hmis.facility_months"]));
    assert!(down.contains("connection hmis") && down.contains("host unreachable"), "{down}");
    assert!(!down.contains(MY_PASSWORD));
    ok(&quarry(dir, &["sql", "-q", "SELECT count(*) FROM population_2024"]));
}
