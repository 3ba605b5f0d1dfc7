//! The command line, defined once: every subcommand and flag with its help
//! and default (clap derives parsing and `--help` from these types).

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use quarry_agent::{AskOptions, Privacy, Protocol};
use quarry_ingest::catalog;
use quarry_ingest::{CellRange, HeaderChoice, IngestOptions, LayoutChoice};
use quarry_sandbox::Limits;
use quarry_server::ServerConfig;

use crate::python;

#[derive(Parser)]
#[command(name = "quarry", version, about = "Self-hosted AI data analyst: load messy tables, ask questions")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
    /// Change a limit on what a file may hold, e.g. `max_cells=100M` (any
    /// command that loads files, and `serve`; repeatable). An error that
    /// hits a limit names it; a wrong name lists them all.
    #[arg(long = "ingest-limit", value_name = "NAME=N", global = true, value_parser = ingest_limit)]
    pub(crate) ingest_limits: Vec<String>,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Load files into the catalog (Parquet + SQLite). Unchanged files are skipped.
    Load {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Data directory holding the catalog.
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        layout: LayoutArgs,
    },
    /// Profile files without loading them: tables, columns, types, statistics, notes.
    Profile {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the documented JSON shape instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        layout: LayoutArgs,
    },
    /// List the tables in the catalog.
    Tables {
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show the rows ingest kept out of a table (totals, footnotes, ragged rows).
    Excluded {
        table: String,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
    },
    /// Run one read-only SQL query over files (loaded first) or an existing catalog.
    /// The query runs in a separate worker process under limits.
    Sql {
        /// Files to load first (as `quarry load` does); each becomes a table.
        files: Vec<PathBuf>,
        /// The query (a leading `--` comment is fine).
        #[arg(long, short, allow_hyphen_values = true)]
        query: String,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// table, csv, json or parquet.
        #[arg(long, default_value = "table")]
        format: String,
        /// Write the result here instead of standard output (required for parquet).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Wall-clock limit in seconds.
        #[arg(long, default_value_t = Limits::default().time.as_secs_f64())]
        time_limit: f64,
        /// Memory pool for the query, in MiB.
        #[arg(long, default_value_t = Limits::default().memory_bytes >> 20)]
        memory_limit: usize,
        /// Most rows returned.
        #[arg(long, default_value_t = Limits::default().max_rows)]
        max_rows: usize,
        /// Most rows the query may read from one live database table (sent
        /// to the database as the scan's LIMIT; reaching it fails the query).
        #[arg(long, default_value_t = Limits::default().max_live_rows)]
        max_live_rows: usize,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Ask a question in plain language: the model writes SQL, Quarry checks
    /// and runs it in a sandboxed worker, repairs failures, and answers.
    Ask {
        /// Files to load first, then the question (last). With files, the
        /// question is about the tables they became; without, about every
        /// table of the catalog.
        #[arg(required = true, num_args = 1..)]
        args: Vec<String>,
        #[command(flatten)]
        ask: AskArgs,
        /// Print the final answer object as JSON.
        #[arg(long)]
        json: bool,
        /// Save the answer as an analysis NAME (see `quarry analysis`).
        #[arg(long, value_name = "NAME")]
        save_as: Option<String>,
        /// With --save-as: make the literal compared with COLUMN a parameter.
        #[arg(long = "param", value_name = "COLUMN[=NAME]", requires = "save_as")]
        params: Vec<String>,
    },
    /// An interactive conversation with follow-up questions over FILEs (the
    /// tables they became; every table of the catalog when none is named).
    Chat {
        files: Vec<PathBuf>,
        #[command(flatten)]
        ask: AskArgs,
    },
    /// Saved analyses: an answer kept by name, run again with no model — on
    /// request with other parameters, and whenever a table it reads gets a
    /// new data version (`quarry load`, `quarry watch`, uploads).
    Analysis {
        #[command(subcommand)]
        what: AnalysisCmd,
        #[arg(long, default_value = catalog::DEFAULT_DIR, global = true)]
        data: PathBuf,
    },
    /// Template packs: analyses over roles (tested, positive, period,
    /// facility, …) bound to a table's columns once — proposed, shown, and
    /// saved only when confirmed with --yes — then run as saved analyses.
    Pack {
        #[command(subcommand)]
        what: PackCmd,
        #[arg(long, default_value = catalog::DEFAULT_DIR, global = true)]
        data: PathBuf,
    },
    /// Load files as they arrive in DIR (and changed ones again), re-running
    /// the analyses that read their tables. Stops with Ctrl-C.
    Watch {
        dir: PathBuf,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// Seconds between looks at DIR.
        #[arg(long, default_value_t = 2.0)]
        every: f64,
        /// Look once, load what is there, and stop (for scripts).
        #[arg(long)]
        once: bool,
    },
    /// Connect a live database, read-only: `connect NAME postgres://USER@HOST/DB`,
    /// `mysql://USER@HOST/DB` (MySQL or MariaDB) or `connect NAME sqlite:PATH`. It is tested first; its tables are then
    /// queried as NAME.table beside the files. `--list` shows the connections,
    /// `--remove NAME` forgets one.
    Connect {
        name: Option<String>,
        url: Option<String>,
        /// The environment variable holding the password (then it is not stored).
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        #[arg(long)]
        list: bool,
        #[arg(long, value_name = "NAME")]
        remove: Option<String>,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
    },
    /// Copy a live table (or the rows --where picks) into the catalog as a
    /// versioned table, so answers can be reproduced after the database
    /// changed: `snapshot dhis.facility_months --where "period >= '2024-01'"`.
    /// Each snapshot of the same name is a new version of one table.
    Snapshot {
        /// SOURCE.TABLE, as queried.
        table: String,
        /// A condition on its rows (SQL), e.g. "state = 'Kano'".
        #[arg(long = "where", value_name = "CONDITION")]
        filter: Option<String>,
        /// The table's name in the catalog (default: SOURCE_TABLE).
        #[arg(long)]
        name: Option<String>,
        /// Refuse (writing nothing) when the snapshot would hold more rows.
        #[arg(long, default_value_t = quarry_ingest::sources::SNAPSHOT_MAX_ROWS)]
        max_rows: usize,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
    },
    /// Findings about tables with no model: impossible values, outliers,
    /// missing reports, duplicated rows, sudden changes, spelling variants,
    /// empty or constant columns — each with the SQL that shows it. FILEs are
    /// loaded first; a TABLE is a name in the catalog.
    Insights {
        #[arg(required = true)]
        targets: Vec<String>,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
        /// Also have the model summarise the findings (they quote values, so
        /// only with --privacy full; the numbers stay the queries').
        #[arg(long)]
        explain: bool,
        /// What of the data may reach the model (for --explain).
        #[arg(long, default_value = Privacy::default().as_str(), value_parser = privacy_values())]
        privacy: Privacy,
        #[command(flatten)]
        llm: LlmArgs,
    },
    /// Score the analyst on questions with known answers: `eval dabench
    /// --suite-dir DIR` (DABench's dev set, scored as the benchmark defines)
    /// or `eval suite FILE` (a YAML/JSON suite). Records, a JSON and a
    /// Markdown summary go to --out; a run started again resumes there.
    Eval {
        #[arg(value_enum)]
        kind: EvalKind,
        /// The suite file, for `eval suite`.
        file: Option<PathBuf>,
        /// DABench's directory (da-dev-questions.jsonl, da-dev-labels.jsonl, da-dev-tables/).
        #[arg(long)]
        suite_dir: Option<PathBuf>,
        /// Ask only the first N questions (after --ids).
        #[arg(long)]
        limit: Option<usize>,
        /// Ask only these question ids (comma-separated).
        #[arg(long, value_delimiter = ',')]
        ids: Vec<String>,
        /// Questions asked at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Where records and summaries go (the files are loaded into OUT/data).
        #[arg(long, default_value = "quarry-eval")]
        out: PathBuf,
        #[command(flatten)]
        ask: AskArgs,
    },
    /// The workspace's definitions: metrics, terms, column descriptions,
    /// synonyms and verified answers the analyst uses (and names) in answers.
    Define {
        #[command(subcommand)]
        what: DefineCmd,
        #[arg(long, default_value = catalog::DEFAULT_DIR, global = true)]
        data: PathBuf,
    },
    /// Run a kernel inside a worker process (started by Quarry itself).
    #[command(hide = true)]
    Worker {
        kind: String,
        /// For `jail`: what to run behind the walls (JSON).
        spec: Option<String>,
        #[arg(long)]
        data: Option<PathBuf>,
        /// `sql`: where to plan (`local`, or `ballista://HOST:PORT`).
        #[arg(long)]
        engine: Option<String>,
    },
    /// Set up Quarry's Python environment (a venv with pinned pandas, numpy,
    /// scipy, statsmodels, scikit-learn, matplotlib) and test the sandbox.
    SetupPython {
        /// The system Python 3 to build from (default: /usr/bin/python3).
        #[arg(long)]
        python: Option<PathBuf>,
        #[command(flatten)]
        py: python::PyArgs,
    },
    /// Run Python scripts over FILEs (loaded first) or the catalog, in the
    /// sandboxed kernel the analyst uses: `df` is the table when there is
    /// one, `dfs["name"]` every table, `sql("SELECT …")` runs on the engine.
    /// Several --code scripts run in order in one kernel, like notebook cells.
    Python {
        files: Vec<PathBuf>,
        /// The script to run (repeatable).
        #[arg(long, required = true)]
        code: Vec<PathBuf>,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// Print one JSON object per script.
        #[arg(long)]
        json: bool,
        /// Directory for figures (PNG); default the current directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Wall-clock limit per script, in seconds.
        #[arg(long, default_value_t = Limits::for_python().time.as_secs_f64())]
        time_limit: f64,
        /// Address space of the kernel, in MiB.
        #[arg(long, default_value_t = Limits::for_python().address_space_bytes >> 20)]
        memory_limit: u64,
        #[command(flatten)]
        py: python::PyArgs,
        /// Test-only: skip the AST check to show the OS walls hold alone.
        #[arg(long, hide = true)]
        skip_ast_check: bool,
    },
    /// Measure the warm Python kernel's start against a cold `import pandas`.
    #[command(hide = true)]
    BenchPython {
        #[arg(long, default_value_t = 30)]
        n: usize,
        #[command(flatten)]
        py: python::PyArgs,
    },
    /// Write the demo dataset (a malaria facility workbook, a population
    /// table, a French CSV, a UTF-16 export, a facility-month table with
    /// anomalies) and serve it in the web app, with each table's insights.
    Demo {
        /// Where the demo files go.
        #[arg(long, default_value = "quarry-demo")]
        dir: PathBuf,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// Load and profile the files on the terminal instead of serving them.
        #[arg(long)]
        no_serve: bool,
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[command(flatten)]
        py: python::PyArgs,
    },
    /// Serve the web app: upload, explore and ask, in the browser.
    Serve {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on; anything but loopback requires login.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Holds quarry.sqlite and the workspaces.
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// Do not offer the model the Python kernel.
        #[arg(long)]
        no_python: bool,
        /// Configuration file with an [llm] table.
        #[arg(long, default_value = "quarry.toml")]
        config: PathBuf,
        /// Questions each user may ask per minute.
        #[arg(long, default_value_t = ServerConfig::QUESTIONS_PER_MINUTE)]
        questions_per_minute: u32,
        /// API requests each user may make per minute.
        #[arg(long, default_value_t = ServerConfig::REQUESTS_PER_MINUTE)]
        requests_per_minute: u32,
        /// Load files as they arrive in DIR into a "Watched" workspace of the
        /// local user, re-running the analyses over their tables.
        #[arg(long, value_name = "DIR")]
        watch: Option<PathBuf>,
        #[command(flatten)]
        web: WebArgs,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        py: python::PyArgs,
    },
    /// Run a Ballista cluster's processes (a build with `--features ballista`).
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCmd,
    },
    /// Accounts for `quarry serve --bind` (login required off loopback).
    User {
        #[command(subcommand)]
        cmd: UserCmd,
        #[arg(long, default_value = catalog::DEFAULT_DIR, global = true)]
        data: PathBuf,
    },
    /// Serve a scripted fake LLM (OpenAI and Anthropic wire protocols) for
    /// tests and demos: replays SCRIPT (JSON or YAML) and records requests.
    FakeLlm {
        /// Port on 127.0.0.1 (0 picks a free one; the URL is printed).
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long)]
        script: PathBuf,
        /// Append every request received to this file as JSON lines.
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Measure the analyst's own overhead per question (fake LLM answering at once).
    #[command(hide = true)]
    BenchAsk {
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        #[arg(long, default_value_t = 50)]
        n: usize,
    },
    /// Generate test and benchmark data: a big `csv` or `xlsx` file, a
    /// `suite` directory (the clinic workbook and a `quarry eval` suite with
    /// the answers planted in it), or `next-month`: a directory with the
    /// demo's clinic workbook as next month's report.
    Gen {
        /// `csv`, `xlsx`, `suite` or `next-month`.
        kind: String,
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        rows: usize,
    },
}

mod cluster;
mod nested;
pub(crate) use cluster::{ClusterCmd, EngineArgs};
pub(crate) use nested::{AnalysisCmd, DefineCmd, EvalKind, PackCmd};

#[derive(Subcommand)]
pub(crate) enum UserCmd {
    /// Add an account; the password comes from QUARRY_PASSWORD or standard input.
    Add {
        name: String,
        #[arg(long)]
        admin: bool,
    },
    /// Print a new API token for NAME (send it as `Authorization: Bearer …`).
    Token { name: String },
}

/// Who may reach `quarry serve`, and how long logins last.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct WebArgs {
    /// A host name the server answers to besides IP addresses and
    /// localhost (repeatable); other names are refused (DNS rebinding).
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// The URL users reach Quarry at behind a proxy, e.g. https://quarry.example.org
    /// (its host is allowed; https makes the session cookie Secure).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// A login session ends after this many hours unused.
    #[arg(long, default_value_t = ServerConfig::SESSION_IDLE_HOURS)]
    pub session_idle_hours: f64,
    /// A login session ends this many days after it began.
    #[arg(long, default_value_t = ServerConfig::SESSION_MAX_DAYS)]
    pub session_max_days: f64,
    /// The address of a reverse proxy that authenticates users itself
    /// (repeatable): its requests naming a user in --trusted-user-header
    /// are that user (created at first sight, without a password). Requests
    /// from any other address cannot use the header.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The header the trusted proxy names the user in.
    #[arg(long, value_name = "HEADER", default_value = ServerConfig::TRUSTED_USER_HEADER)]
    pub trusted_user_header: String,
}

/// Which model: flags over the environment over `quarry.toml` (`ask`,
/// `chat`, `eval`, `insights --explain`).
#[derive(clap::Args, Clone)]
pub(crate) struct LlmArgs {
    /// openai (any OpenAI-compatible server: Ollama, vLLM, llama.cpp, LM Studio, OpenRouter) or anthropic.
    #[arg(long)]
    pub(crate) llm_provider: Option<String>,
    /// e.g. http://localhost:11434/v1 for Ollama.
    #[arg(long)]
    pub(crate) llm_base_url: Option<String>,
    #[arg(long)]
    pub(crate) llm_model: Option<String>,
    /// Prefer QUARRY_LLM_API_KEY or OPENAI_API_KEY/ANTHROPIC_API_KEY: flags show up in process lists.
    #[arg(long)]
    pub(crate) llm_api_key: Option<String>,
    /// Configuration file with an [llm] table.
    #[arg(long, default_value = "quarry.toml")]
    pub(crate) config: PathBuf,
}

impl LlmArgs {
    pub(crate) fn overrides(&self) -> quarry_llm::LlmOverrides {
        quarry_llm::LlmOverrides {
            provider: self.llm_provider.clone(),
            base_url: self.llm_base_url.clone(),
            model: self.llm_model.clone(),
            api_key: self.llm_api_key.clone(),
        }
    }
}

/// Options shared by `ask` and `chat`.
#[derive(clap::Args, Clone)]
pub(crate) struct AskArgs {
    #[arg(long, default_value = catalog::DEFAULT_DIR)]
    pub(crate) data: PathBuf,
    /// What of the data may reach the model.
    #[arg(long, default_value = Privacy::default().as_str(), value_parser = privacy_values())]
    pub(crate) privacy: Privacy,
    /// Attempts per step before giving up.
    #[arg(long, default_value_t = AskOptions::default().max_attempts)]
    pub(crate) max_attempts: usize,
    /// Print the prompt sent to the model.
    #[arg(long)]
    pub(crate) show_prompt: bool,
    /// Ask the model again even when a stored answer exists.
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// How the model is asked to act.
    #[arg(long, default_value = Protocol::default().as_str(), value_parser = protocol_values())]
    pub(crate) protocol: Protocol,
    /// Wall-clock limit per query, in seconds.
    #[arg(long, default_value_t = Limits::default().time.as_secs_f64())]
    pub(crate) time_limit: f64,
    /// Most rows one query may read from one live database table.
    #[arg(long, default_value_t = Limits::default().max_live_rows)]
    pub(crate) max_live_rows: usize,
    #[command(flatten)]
    pub(crate) llm: LlmArgs,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// With files named: describe every table of the catalog to the model,
    /// not only the tables those files became.
    #[arg(long)]
    pub(crate) all_tables: bool,
    /// Do not offer the model the Python kernel (SQL only).
    #[arg(long)]
    pub(crate) no_python: bool,
    /// Save figures drawn by Python steps in this directory.
    #[arg(long)]
    pub(crate) figures: Option<PathBuf>,
    /// Write the answers to FILE, by its extension: .html (a self-contained
    /// report), .ipynb (a Jupyter notebook), .json, or .csv/.xlsx (the last
    /// result table). In `chat` it is rewritten after every answer.
    #[arg(long, value_name = "FILE")]
    pub(crate) export: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) py: python::PyArgs,
}

/// The privacy modes, listed (with what each shows) from [`Privacy::ALL`].
fn privacy_values() -> impl TypedValueParser<Value = Privacy> {
    let values = Privacy::ALL.map(|p| PossibleValue::new(p.as_str()).help(p.describe()));
    PossibleValuesParser::new(values).map(|s| s.parse::<Privacy>().unwrap_or_default())
}

/// The protocols, listed from [`Protocol::ALL`].
fn protocol_values() -> impl TypedValueParser<Value = Protocol> {
    let values = Protocol::ALL.map(|p| PossibleValue::new(p.as_str()).help(p.describe()));
    PossibleValuesParser::new(values).map(|s| s.parse::<Protocol>().unwrap_or_default())
}

/// `NAME=N` for one of [`IngestOptions`]' limits, checked as it is parsed.
/// How a file is laid out, when the guess was wrong. Given to `load`, the
/// choice is stored with the file and applied again to its later versions;
/// `--header auto` alone clears it.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct LayoutArgs {
    /// The sheet the layout flags below apply to (default: every sheet).
    #[arg(long)]
    pub(crate) sheet: Option<String>,
    /// Only these cells are the table, e.g. `A5:F40` (spreadsheets).
    #[arg(long, value_name = "A1:F40", value_parser = |s: &str| s.parse::<CellRange>())]
    pub(crate) range: Option<CellRange>,
    /// Where the header is: `auto` (decided from the evidence), `none`
    /// (every row is data; columns are numbered) or its row number.
    #[arg(long, value_name = "none|auto|ROW", value_parser = |s: &str| s.parse::<HeaderChoice>())]
    pub(crate) header: Option<HeaderChoice>,
    /// The sheet is one table: do not split it at blank rows, titles or new headers.
    #[arg(long)]
    pub(crate) one_table: bool,
    /// Start a new table at this sheet row (repeatable).
    #[arg(long = "split-at", value_name = "ROW")]
    pub(crate) split_at: Vec<u64>,
}

impl LayoutArgs {
    /// The choice the flags make, or none when no flag was given.
    pub(crate) fn choice(&self) -> Option<LayoutChoice> {
        let given = self.sheet.is_some()
            || self.range.is_some()
            || self.header.is_some()
            || self.one_table
            || !self.split_at.is_empty();
        given.then(|| LayoutChoice {
            sheet: self.sheet.clone(),
            range: self.range.clone(),
            header: self.header.unwrap_or_default(),
            one_table: self.one_table,
            split_at: self.split_at.clone(),
        })
    }
}

fn ingest_limit(s: &str) -> Result<String, String> {
    IngestOptions::default().set(s).map(|()| s.to_string())
}

impl Cli {
    /// The ingest limits, defaults changed by `--ingest-limit`.
    pub(crate) fn ingest_options(&self) -> IngestOptions {
        let mut o = IngestOptions::default();
        for l in &self.ingest_limits {
            // Each was checked by `ingest_limit` when parsed.
            let _ = o.set(l);
        }
        o
    }
}
