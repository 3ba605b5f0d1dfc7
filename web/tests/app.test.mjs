// Browser tests: the real `quarry serve` and `quarry fake-llm` binaries,
// Debian's Chromium driven by playwright-core. Screenshots of the main
// states go to web/test-results/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const quarry = process.env.QUARRY_BIN || join(root, "target/debug/quarry");
const shots = join(root, "web/test-results");
mkdirSync(shots, { recursive: true });
const tmp = mkdtempSync(join(tmpdir(), "quarry-web-"));
const children = [];
let browser;

const TABLE = "clinic_reports_2024_monthly_data";
const GOOD = `SELECT location_state AS state, sum(tested_positive_rdt_ge5yrs) AS positives FROM ${TABLE} GROUP BY 1 ORDER BY 1`;
const TPR = "pct(sum(tested_positive_rdt_ge5yrs), sum(tested_malaria_rdt_ge5yrs))";
const LOWEST = `SELECT location_lga, ${TPR} AS tpr FROM ${TABLE} GROUP BY 1 ORDER BY 2 LIMIT 1`;
const script = {
  repeat: true,
  replies: [
    { when: "Positives by state", turn: 0, tool_calls: [{ name: "run_sql", arguments: { sql: GOOD.replace("tested_positive", "tested_positve") } }] },
    { when: "Positives by state", turn: 1, text: "Summing positives per state.", tool_calls: [{ name: "run_sql", arguments: { sql: GOOD } }] },
    { when: "Positives by state", turn: 2, tool_calls: [{ name: "final_answer", arguments: { answer: "Positives aged 5 and over, by state.", chart: { type: "bar", x: "state", y: "positives" } } }] },
    { when: "Take your time", turn: 0, delay_ms: 30000, text: "too late" },
    { when: "They answered", turn: 0, tool_calls: [{ name: "run_sql", arguments: { sql: LOWEST } }] },
    { when: "They answered", turn: 1, tool_calls: [{ name: "final_answer", arguments: { answer: "{row 1 location_lga} had the lowest positivity ({row 1 tpr}%)." } }] },
    { when: "Positives in Kano", turn: 0, tool_calls: [{ name: "run_sql", arguments: { sql: `SELECT sum(tested_positive_rdt_ge5yrs) AS positives FROM ${TABLE} WHERE location_state = 'Kano'` } }] },
    { when: "Positives in Kano", turn: 1, tool_calls: [{ name: "final_answer", arguments: { answer: "{positives} people aged 5 and over tested positive." } }] },
    { when: "With pandas, Kano", turn: 0, tool_calls: [{ name: "run_python", arguments: { code: `t = dfs["${TABLE}"]\nk = t[t["location_state"] == "Kano"]\npd.DataFrame({"positives": [int(k["tested_positive_rdt_ge5yrs"].sum())]})` } }] },
    { when: "With pandas, Kano", turn: 1, tool_calls: [{ name: "final_answer", arguments: { answer: "{positives} people aged 5 and over tested positive." } }] },
    { when: "Findings on table", text: "Check the flagged rows first." },
    { when: "Where is positivity lowest", turn: 0, tool_calls: [{ name: "ask_user", arguments: { question: "By state or by LGA?", options: ["state", "LGA"] } }] },
  ],
};

// Start a process and resolve with the first stdout line matching `re`.
function start(args, env, re) {
  return new Promise((ok, fail) => {
    const p = spawn(quarry, args, { cwd: tmp, env: { ...process.env, ...env } });
    children.push(p);
    p.log = "";
    p.stdout.on("data", (d) => { p.log += d; });
    p.stderr.on("data", (d) => { p.log += d; });
    let out = "", err = "";
    const timer = setTimeout(() => fail(new Error(`${args[0]} did not start: ${out}\n${err}`)), 60000);
    p.stdout.on("data", (d) => {
      out += d;
      const m = out.match(re);
      if (m) { clearTimeout(timer); ok(m); }
    });
    p.stderr.on("data", (d) => { err += d; });
    p.on("exit", (code) => { clearTimeout(timer); fail(new Error(`${args[0]} exited ${code}: ${err}`)); });
  });
}

function noLlmEnv() {
  const env = {};
  for (const k of ["QUARRY_LLM_PROVIDER", "QUARRY_LLM_BASE_URL", "QUARRY_LLM_MODEL", "QUARRY_LLM_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"]) env[k] = "";
  env.QUARRY_LLM_DISCOVER = "off";
  return env;
}

let llmUrl, local, shared;
const demo = join(tmp, "demo");

before(async () => {
  writeFileSync(join(tmp, "script.json"), JSON.stringify(script));
  execFileSync(quarry, ["demo", "--no-serve", "--dir", demo, "--data", join(tmp, "scratch-data")], { cwd: tmp, stdio: "ignore" });
  execFileSync(quarry, ["gen", "next-month", join(tmp, "next")], { cwd: tmp, stdio: "ignore" });
  [, llmUrl] = await start(["fake-llm", "--script", join(tmp, "script.json")], {}, /OpenAI-compatible at (\S+)/);
  const llm = { ...noLlmEnv(), QUARRY_LLM_BASE_URL: llmUrl, QUARRY_LLM_MODEL: "fake-model" };
  [, local] = await start(["serve", "--port", "0", "--data", join(tmp, "local")], llm, /serving (http:\S+)/);
  // A server bound beyond loopback requires login; two accounts.
  const sharedData = join(tmp, "shared");
  for (const name of ["alice", "bob"]) {
    execFileSync(quarry, ["user", "add", name, "--data", sharedData], { env: { ...process.env, QUARRY_PASSWORD: `${name}-password` }, stdio: "ignore" });
  }
  // Logging every request it would log, to show a share link's token is never among them.
  const [, addr] = await start(["serve", "--port", "0", "--bind", "0.0.0.0", "--data", sharedData, "--no-python"], { ...llm, QUARRY_LOG: "debug" }, /serving http:\/\/(\S+)/);
  shared = `http://127.0.0.1:${addr.split(":").pop()}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  if (browser) await browser.close();
  for (const c of children) c.kill("SIGINT");
});

const nmep = resolve(root, "../shared/fixtures/nmep_tpr_2024.xlsx");

test("uploading a workbook shows its tables and what was cleaned", async () => {
  const page = await browser.newPage();
  await page.goto(local);
  await page.waitForSelector("#app:not([hidden])");
  const files = [join(demo, "clinic_reports_2024.xlsx"), join(demo, "population_2024.csv")];
  if (existsSync(nmep)) files.push(nmep);
  else if (process.env.QUARRY_REQUIRE_SHARED) assert.fail("../shared/fixtures/nmep_tpr_2024.xlsx is missing");
  await page.setInputFiles("#file", files);
  for (const f of files) {
    const name = f.split("/").pop();
    await page.waitForSelector(`#uploads li[data-file="${name}"][data-done]`, { timeout: 60000 });
    assert.equal(await page.getAttribute(`#uploads li[data-file="${name}"]`, "data-done"), "ok", name);
  }
  await page.waitForSelector(`.table-card[data-table="${TABLE}"]`);
  const notes = await page.locator(`.table-card[data-table="${TABLE}"] li[data-note]`).count();
  assert.ok(notes > 0, "ingest notes are shown");
  if (existsSync(nmep)) {
    const cards = await page.locator(".table-card h3").allTextContents();
    assert.ok(cards.some((t) => t.startsWith("nmep_tpr_2024")), cards.join("\n"));
  }
  await page.click(`.table-card[data-table="${TABLE}"] button.preview-rows`);
  await page.waitForSelector(`.table-card[data-table="${TABLE}"] table.grid tbody tr`);
  // The model summarises a card's findings only where privacy lets it read them.
  const summarise = page.locator(".table-card button.summarise-insights").first();
  await summarise.waitFor({ timeout: 60000 });
  await page.selectOption("#privacy", "strict");
  await summarise.click();
  await page.waitForSelector(".insight-summary.error");
  assert.match(await page.textContent(".insight-summary.error"), /privacy mode strict keeps from the model/);
  await page.selectOption("#privacy", "full");
  await summarise.click();
  await page.waitForSelector(".insight-summary.answer-text");
  assert.match(await page.textContent(".insight-summary.answer-text"), /Check the flagged rows first/);
  await page.selectOption("#privacy", "strict");
  await page.screenshot({ path: join(shots, "1-uploaded.png"), fullPage: true });
  await page.close();
});

test("a wrong header guess is corrected on the table's card; a reload and the file's next version keep it", async () => {
  const page = await browser.newPage();
  await page.goto(local);
  await page.waitForSelector("#app:not([hidden])");
  // Question numbers as the header over 1–5 answers read like data rows.
  const file = join(tmp, "likert.csv");
  const upload = async (rows) => {
    writeFileSync(file, ["Respondent,1,2,3", ...rows].join("\n") + "\n");
    await page.setInputFiles("#file", [file]);
    await page.waitForSelector(`#uploads li[data-file="likert.csv"][data-done]`, { timeout: 60000 });
  };
  await upload(["R1,4,5,3", "R2,2,4,4"]);
  const card = '.table-card[data-table="likert"]';
  await page.waitForSelector(card);
  assert.match(await page.textContent(`${card} .summary`), /3 rows/, "guessed: no header, every row is data");
  await page.click(`${card} details.layout summary`);
  await page.fill(`${card} input.header-row`, "1");
  await page.click(`${card} button.set-header`);
  await page.waitForFunction((sel) => /2 rows/.test(document.querySelector(`${sel} .summary`)?.textContent || ""), card);
  const cols = async () => page.textContent(`${card} .cols`);
  assert.match(await cols(), /^respondent \(text\), c_1 \(integer\), c_2 \(integer\), c_3 \(integer\)$/);
  assert.match(await page.textContent(`${card} details.layout summary`), /header on row 1 \(chosen\)/);
  await page.reload();
  await page.waitForSelector(card);
  assert.match(await page.textContent(`${card} .summary`), /2 rows/, "the choice is kept after a reload");
  await upload(["R1,4,5,3", "R2,2,4,4", "R3,1,1,2"]);
  await page.waitForFunction((sel) => /3 rows × 4 columns · likert.csv · v3/.test(document.querySelector(`${sel} .summary`)?.textContent || ""), card);
  assert.match(await cols(), /^respondent /, "the next version is read with the chosen header");
  await page.screenshot({ path: join(shots, "7-layout.png"), fullPage: true });
  await page.close();
});

test("a question streams its steps in order, with a retry, a table and a chart; a reload restores it", async () => {
  const page = await browser.newPage();
  await page.goto(local);
  await page.waitForSelector(`.table-card[data-table="${TABLE}"]`);
  await page.click("#new-conversation");
  await page.waitForSelector("#send:not([disabled])");
  await page.fill("#question", "Positives by state, as a chart");
  await page.click("#send");
  await page.waitForSelector('.step[data-kind="answer"]', { timeout: 60000 });
  const kinds = await page.locator(".question .step").evaluateAll((els) => els.map((e) => e.dataset.kind));
  const order = ["started", "code_proposed", "failed", "retrying", "code_proposed", "executed", "answer"];
  let i = 0;
  for (const k of kinds) if (k === order[i]) i++;
  assert.equal(i, order.length, `steps in order: ${kinds.join(", ")}`);
  assert.ok(await page.locator(".step[data-kind=plan]").count() > 0, "the plan is shown");
  assert.equal(await page.locator(".answer table.grid tbody tr").count(), 4, "one row per state");
  await page.waitForSelector(".answer .chart svg .mark-rect path, .answer .chart canvas", { timeout: 20000 });
  const exports = await page.locator(".answer .exports a").count();
  assert.equal(exports, 6, "CSV, XLSX, report, PDF, notebook and JSON");
  // The PDF link gives a PDF printed by the server's headless Chromium.
  const pdfLink = page.locator(".answer .exports a", { hasText: "PDF" }).first();
  const pdf = await page.request.get(new URL(await pdfLink.getAttribute("href"), page.url()).href);
  assert.equal(pdf.status(), 200, await pdf.text());
  assert.match(pdf.headers()["content-type"], /application\/pdf/);
  assert.equal((await pdf.body()).subarray(0, 4).toString(), "%PDF");
  // The conversation's HTML report renders its chart with nothing fetched:
  // the chart libraries are inside the file.
  const report = await page.request.get(new URL(await page.locator("#export-report").getAttribute("href"), page.url()).href);
  assert.equal(report.status(), 200);
  const offline = await browser.newPage();
  await offline.route("**/*", (route) => route.abort());
  await offline.setContent(await report.text());
  await offline.waitForSelector(".chart svg .mark-rect path", { timeout: 20000 });
  assert.equal(await offline.locator("section.q table tbody tr").count(), 4);
  await offline.screenshot({ path: join(shots, "2b-report.png"), fullPage: true });
  await offline.close();
  await page.screenshot({ path: join(shots, "2-answered.png"), fullPage: true });
  const before = kinds.length;
  await page.reload();
  await page.waitForSelector('.step[data-kind="answer"]');
  const after = await page.locator(".question .step").count();
  assert.equal(after, before, "the conversation is restored from the store");
  await page.waitForSelector(".answer .chart svg, .answer .chart canvas");
  await page.screenshot({ path: join(shots, "3-reloaded.png"), fullPage: true });
  await page.close();
});

test("a metric defined in the page is used and named; a question back is answered with a click; a scoped question sees its table only", async () => {
  const page = await browser.newPage();
  await page.goto(local);
  await page.waitForSelector(`.table-card[data-table="${TABLE}"]`);
  await page.click("#definitions summary");
  await page.selectOption("#definition-kind", "metric");
  await page.fill('#definition-fields input[name="name"]', "tpr");
  await page.fill('#definition-fields input[name="expr"]', "sum(tested_positive_rdt_ge5) FROM x; DROP TABLE x");
  await page.fill('#definition-fields input[name="table"]', TABLE);
  await page.click('#definition-form button[type="submit"]');
  await page.waitForSelector("#definition-status.error");
  assert.match(await page.textContent("#definition-status"), /one expression only/);
  await page.fill('#definition-fields input[name="name"]', "tpr");
  await page.fill('#definition-fields input[name="expr"]', TPR);
  await page.fill('#definition-fields input[name="table"]', TABLE);
  await page.fill('#definition-fields input[name="description"]', "test positivity rate, aged 5 and over");
  await page.click('#definition-form button[type="submit"]');
  await page.waitForSelector('#definition-list li[data-kind="metric"]');
  await page.check(`.table-card[data-table="${TABLE}"] input.scope-table`);
  await page.click("#new-conversation");
  await page.waitForSelector("#send:not([disabled])");
  await page.fill("#question", "Where is positivity lowest?");
  await page.click("#send");
  await page.waitForSelector('.step[data-kind="clarify"] button.choice');
  assert.match(await page.textContent('.step[data-kind="context_built"]'), /Context: 1 table\(s\)/, "only the ticked table");
  await page.screenshot({ path: join(shots, "5-asked-back.png"), fullPage: true });
  await page.click('.step[data-kind="clarify"] button.choice:has-text("LGA")');
  await page.waitForSelector('.step[data-kind="answer"] .answer-text');
  const text = await page.textContent('.step[data-kind="answer"] .answer-text');
  assert.match(text, /had the lowest positivity \(\d+(\.\d+)?%\)/);
  assert.match(text, /Definitions used: metric tpr/);
  await page.click(".answer button.mark-right");
  await page.waitForSelector('#definition-list li[data-kind="verified"]');
  await page.reload();
  await page.waitForSelector('#definition-list li[data-kind="verified"]', { state: "attached" });
  assert.equal(await page.locator('.step[data-kind="clarify"]').count(), 1, "the question back is kept");
  await page.close();
});

test("an answer saved as an analysis runs with another parameter and again on next month's file; a reload keeps it", async () => {
  const page = await browser.newPage();
  // The conversation the page opens first loads slowly: one opened meanwhile
  // ("New conversation") must not receive its answers.
  let slowed = false;
  await page.route(/\/api\/conversations\/[^/?]+$/, async (route) => {
    if (!slowed && route.request().method() === "GET") { slowed = true; await new Promise((r) => setTimeout(r, 1500)); }
    await route.continue();
  });
  await page.goto(local);
  await page.waitForSelector(`.table-card[data-table="${TABLE}"]`);
  await page.click("#new-conversation");
  await page.waitForSelector("#send:not([disabled])");
  await page.waitForTimeout(2000);
  assert.ok(slowed, "the first conversation's load was slowed");
  assert.equal(await page.locator("#thread .question").count(), 0, "the new conversation shows no earlier answers");
  await page.fill("#question", "Positives in Kano?");
  await page.click("#send");
  await page.waitForSelector(".answer button.save-as-analysis");
  await page.click(".answer button.save-as-analysis");
  await page.fill(".save-analysis input.analysis-name", "kano_positives");
  await page.fill('.save-analysis input[aria-label="parameter for location_state"]', "state");
  await page.click(".save-analysis button.save-analysis-confirm");
  const card = '.analysis[data-analysis="kano_positives"]';
  await page.waitForSelector(`${card} .analysis-run`);
  const first = await page.textContent(`${card} .analysis-run .answer-text`);
  assert.match(first, /people aged 5 and over tested positive/);
  await page.fill(`${card} input[name="state"]`, "Lagos");
  await page.click(`${card} button.run-analysis`);
  await page.waitForFunction((sel) => /Run 2/.test(document.querySelector(`${sel} .analysis-run`)?.textContent || ""), card);
  assert.notEqual(await page.textContent(`${card} .analysis-run .answer-text`), first, "another state, another number");
  await page.setInputFiles("#file", [join(tmp, "next", "clinic_reports_2024.xlsx")]);
  await page.waitForFunction((sel) => /new data/.test(document.querySelector(`${sel} .analysis-run`)?.textContent || ""), card, { timeout: 60000 });
  assert.match(await page.textContent(`${card} .comparison`), /positives: [\d,]+ → [\d,]+/);
  await page.screenshot({ path: join(shots, "8-analysis.png"), fullPage: true });
  await page.reload();
  await page.waitForSelector(`${card} .comparison`);
  // A Python answer saved the same way: its parameter a variable, its code shown.
  await page.click("#new-conversation");
  await page.waitForSelector("#send:not([disabled])");
  await page.fill("#question", "With pandas, Kano positives?");
  await page.click("#send");
  await page.waitForSelector(".answer button.save-as-analysis");
  await page.click(".answer button.save-as-analysis");
  await page.fill(".save-analysis input.analysis-name", "kano_py");
  await page.fill('.save-analysis input[aria-label="parameter for location_state"]', "state");
  await page.click(".save-analysis button.save-analysis-confirm");
  const py = '.analysis[data-analysis="kano_py"]';
  await page.waitForSelector(`${py} .analysis-run[data-ok="true"]`);
  const kano = await page.textContent(`${py} .analysis-run .answer-text`);
  assert.match(kano, /people aged 5 and over tested positive/);
  assert.match(await page.textContent(`${py} .analysis-code summary`), /Code \(python\)/);
  assert.match(await page.textContent(`${py} .analysis-code`), /t\["location_state"\] == state/);
  await page.fill(`${py} input[name="state"]`, "Lagos");
  await page.click(`${py} button.run-analysis`);
  await page.waitForFunction((sel) => /Run 2/.test(document.querySelector(`${sel} .analysis-run`)?.textContent || ""), py);
  assert.notEqual(await page.textContent(`${py} .analysis-run .answer-text`), kano, "another state, another number");
  await page.close();
});

test("a database connected in the page is queried beside the files; a wrong one is refused with the reason; removal forgets it", async () => {
  // A field app's SQLite export, made with Python's own sqlite3.
  const db = join(tmp, "field.db");
  execFileSync("python3", ["-c", `import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE visits (state TEXT, tested INTEGER)")
c.executemany("INSERT INTO visits VALUES (?, ?)", [("Kano", 5), ("Kano", 7), ("Lagos", 11)])
c.commit()`, db]);
  const page = await browser.newPage();
  await page.goto(local);
  await page.waitForSelector(`.table-card[data-table="${TABLE}"]`);
  await page.click("#connections summary");
  assert.match(await page.getAttribute("#connection-url", "placeholder"), /postgres:\/\/.*mysql:\/\/.*sqlite:/);
  const form = "#connection-form";
  await page.fill(`${form} input[name="name"]`, "field");
  await page.fill(`${form} input[name="url"]`, `sqlite:${join(tmp, "missing.db")}`);
  await page.click(`${form} button[type="submit"]`);
  await page.waitForSelector("#connection-status.error");
  assert.match(await page.textContent("#connection-status"), /not saved: connection field: no SQLite file at/);
  await page.fill(`${form} input[name="url"]`, `sqlite:${db}`);
  await page.click(`${form} button[type="submit"]`);
  await page.waitForSelector('#connection-list li[data-connection="field"]');
  assert.match(await page.textContent('#connection-list li[data-connection="field"]'), /sqlite.*field\.visits/);
  // Queried in the SQL console: the sums of the rows written above.
  await page.click("#sql-console summary");
  await page.fill("#sql", "SELECT state, sum(tested) AS tested FROM field.visits GROUP BY state ORDER BY state");
  await page.click("#run-sql");
  await page.waitForFunction(() => /Lagos/.test(document.querySelector("#sql-result")?.textContent || ""));
  const text = await page.textContent("#sql-result");
  assert.match(text, /Kano\s*12/);
  assert.match(text, /Lagos\s*11/);
  // A snapshot of Kano's rows becomes a table of the catalog.
  const li = '#connection-list li[data-connection="field"]';
  await page.fill(`${li} input.snapshot-where`, "state = 'Kano'");
  await page.click(`${li} button.snapshot`);
  await page.waitForFunction((sel) => /rows → table/.test(document.querySelector(`${sel} .snapshot-status`)?.textContent || ""), li);
  assert.match(await page.textContent(`${li} .snapshot-status`), /2 rows → table field_visits/);
  await page.waitForSelector('.table-card[data-table="field_visits"]');
  // More rows than the snapshot may hold: nothing written, and the page says why.
  await page.fill(`${li} input.snapshot-where`, "");
  await page.fill(`${li} input.snapshot-max`, "1");
  await page.click(`${li} button.snapshot`);
  await page.waitForSelector(`${li} .snapshot-status.error`);
  assert.match(await page.textContent(`${li} .snapshot-status`), /more than 1 rows — nothing written/);
  await page.fill(`${li} input.snapshot-max`, "1000");
  await page.fill(`${li} input.snapshot-where`, "no_such_column = 1");
  await page.click(`${li} button.snapshot`);
  await page.waitForSelector(`${li} .snapshot-status.error`);
  assert.match(await page.textContent(`${li} .snapshot-status`), /no_such_column/);
  await page.screenshot({ path: join(shots, "10-databases.png"), fullPage: true });
  await page.reload();
  await page.waitForSelector('#connection-list li[data-connection="field"]', { state: "attached" });
  await page.click("#connections summary");
  await page.click('#connection-list li[data-connection="field"] button.remove-connection');
  await page.waitForFunction(() => !document.querySelector('#connection-list li[data-connection="field"]'));
  await page.close();
});

test("stop cancels a run in flight", async () => {
  const page = await browser.newPage();
  await page.goto(local);
  await page.waitForSelector("#app:not([hidden])");
  await page.click("#new-conversation");
  await page.waitForSelector("#send:not([disabled])");
  await page.fill("#question", "Take your time with this one");
  await page.click("#send");
  await page.waitForSelector("#stop:not([hidden])");
  await page.waitForSelector('.step[data-kind="started"]');
  const t0 = Date.now();
  await page.click("#stop");
  await page.waitForSelector('.step[data-kind="cancelled"]', { timeout: 10000 });
  assert.ok(Date.now() - t0 < 10000);
  await page.waitForSelector("#stop", { state: "hidden" });
  await page.screenshot({ path: join(shots, "4-stopped.png"), fullPage: true });
  await page.close();
});

test("without a model the page says how to configure one, and data still works", async () => {
  const [, url] = await start(["serve", "--port", "0", "--data", join(tmp, "nollm"), "--no-python"], noLlmEnv(), /serving (http:\S+)/);
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForSelector("#banner:not([hidden])");
  const text = await page.textContent("#banner");
  assert.match(text, /QUARRY_LLM_MODEL/);
  assert.match(text, /11434/);
  await page.setInputFiles("#file", [join(demo, "population_2024.csv"), join(demo, "facility_months_2024.csv"), join(demo, "clinic_reports_2024.xlsx")]);
  await page.waitForSelector('.table-card[data-table="population_2024"]');
  // Insights with no model: the planted anomalies, each with its query and rows.
  const card = '.table-card[data-table="facility_months_2024"]';
  await page.waitForSelector(`${card} .insight[data-kind="impossible_values"]`, { timeout: 60000 });
  assert.match(await page.textContent(`${card} .insight[data-kind="impossible_values"]`), /2 rows have positive greater than tested/);
  await page.click(`${card} button.more-insights`);
  for (const kind of ["duplicate_rows", "missing_periods", "outliers"]) {
    assert.ok(await page.locator(`${card} .insight[data-kind="${kind}"]`).count() > 0, kind);
  }
  await page.click(`${card} .insight[data-kind="missing_periods"] summary`);
  assert.match(await page.textContent(`${card} .insight[data-kind="missing_periods"] table.grid`), /PHC Bonny 2/);
  await page.click(`${card} .insight[data-kind="sudden_change"] summary`);
  await page.waitForSelector(`${card} .insight[data-kind="sudden_change"] .chart svg, ${card} .insight[data-kind="sudden_change"] .chart canvas`, { timeout: 20000 });
  await page.screenshot({ path: join(shots, "6-insights.png"), fullPage: true });
  // The malaria pack, with no model: proposed roles, confirmed, run; chart and table shown.
  const clinic = `.table-card[data-table="${TABLE}"]`;
  await page.waitForSelector(clinic);
  await page.click(`${clinic} details.packs summary`);
  await page.click(`${clinic} button.bind-pack[data-pack="malaria-routine"]`);
  await page.waitForSelector(`${clinic} input.role-columns[data-role="tested"]`);
  assert.equal(await page.inputValue(`${clinic} input.role-columns[data-role="tested"]`), "tested_malaria_rdt_lt5yrs, tested_malaria_rdt_ge5yrs");
  assert.equal(await page.locator('.analysis[data-analysis^="tpr_by_admin_1"]').count(), 0, "nothing runs before it is confirmed");
  // Age groups are read from the wide columns' names: shown, ticked, used once confirmed.
  assert.ok(await page.isChecked(`${clinic} input.role-split`));
  assert.match(await page.textContent(`${clinic} .split-groups`), /<5 yrs — positive: tested_positive_rdt_lt5yrs; tested: tested_malaria_rdt_lt5yrs/);
  await page.click(`${clinic} button.confirm-pack`);
  await page.waitForSelector(`${clinic} .pack-done`, { timeout: 60000 });
  const tpr = `.analysis[data-analysis="tpr_by_admin_1-${TABLE}"]`;
  await page.waitForSelector(`${tpr} table.grid tbody tr`);
  assert.equal(await page.locator(`${tpr} table.grid tbody tr`).count(), 4, "one row per state");
  assert.match(await page.textContent(`${tpr} .answer-text`), /The highest test positivity rate was in \w+: [\d.]+%/);
  await page.waitForSelector(`${tpr} .chart svg, ${tpr} .chart canvas`, { timeout: 20000 });
  const ages = `.analysis[data-analysis="tpr_by_age_group-${TABLE}"]`;
  await page.waitForSelector(`${ages} table.grid tbody tr`);
  assert.equal(await page.locator(`${ages} table.grid tbody tr`).count(), 2, "<5 and ≥5 years");
  await page.screenshot({ path: join(shots, "6b-pack.png"), fullPage: true });
  await page.reload();
  await page.waitForSelector(`${card} .insight[data-kind="impossible_values"]`);
  await page.waitForSelector(`${tpr} table.grid tbody tr`);
  await page.close();
});

test("a second user cannot open the first user's data by URL or API", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(shared);
  await page.waitForSelector("#login:not([hidden])");
  await page.fill('#login input[name="name"]', "alice");
  await page.fill('#login input[name="password"]', "alice-password");
  await page.click('#login button[type="submit"]');
  await page.waitForSelector("#app:not([hidden])");
  // Her sessions are listed, each with a Revoke button.
  await page.click("#sessions summary");
  await page.waitForSelector("#tokens li button");
  assert.match(await page.textContent("#tokens li"), /login session/);
  await page.setInputFiles("#file", [join(demo, "population_2024.csv")]);
  await page.waitForSelector('.table-card[data-table="population_2024"]');
  const ws = await page.$eval("#workspace", (s) => s.value);
  const conv = await page.$eval("#conversation", (s) => s.value);
  // The same URLs, with bob's session.
  const login = await fetch(`${shared}/api/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "bob", password: "bob-password" }) });
  const { token } = await login.json();
  const auth = { authorization: `Bearer ${token}` };
  for (const path of [`/api/workspaces/${ws}/tables`, `/api/workspaces/${ws}/tables/population_2024/rows`, `/api/workspaces/${ws}/datasets`, `/api/conversations/${conv}`, `/api/conversations/${conv}/events`, `/api/conversations/${conv}/questions/1/export/csv`]) {
    const r = await fetch(shared + path, { headers: auth });
    assert.equal(r.status, 404, path);
  }
  const sql = await fetch(`${shared}/api/workspaces/${ws}/sql`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ sql: "SELECT * FROM population_2024" }) });
  assert.equal(sql.status, 404);
  // Bob, no admin, cannot connect a database even to his own workspace.
  const bobWs = (await (await fetch(`${shared}/api/workspaces`, { headers: auth })).json())[0].id;
  const connect = await fetch(`${shared}/api/workspaces/${bobWs}/connections`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ name: "x", url: "sqlite:/etc/hostname" }) });
  assert.equal(connect.status, 403);
  const mine = await (await fetch(`${shared}/api/datasets`, { headers: auth })).json();
  assert.equal(mine.length, 0, "bob sees no datasets of alice's");
  assert.equal((await fetch(`${shared}/api/datasets`)).status, 401, "no session, no data");
  // In bob's browser, alice's workspace URL shows bob's own workspace instead.
  const bobCtx = await browser.newContext({ extraHTTPHeaders: auth });
  const bobPage = await bobCtx.newPage();
  await bobPage.goto(`${shared}/#ws=${ws}&c=${conv}`);
  await bobPage.waitForSelector("#app:not([hidden])");
  assert.notEqual(await bobPage.$eval("#workspace", (s) => s.value), ws);
  assert.equal(await bobPage.locator('.table-card[data-table="population_2024"]').count(), 0);
  await bobPage.screenshot({ path: join(shots, "5-second-user.png"), fullPage: true });
  await ctx.close();
  await bobCtx.close();
});

test("an owner shares a conversation: a browser with no account sees its answer and chart; a viewer reads but cannot ask", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(shared);
  await page.fill('#login input[name="name"]', "alice");
  await page.fill('#login input[name="password"]', "alice-password");
  await page.click('#login button[type="submit"]');
  await page.waitForSelector("#app:not([hidden])");
  await page.setInputFiles("#file", [join(demo, "clinic_reports_2024.xlsx")]);
  await page.waitForSelector(`.table-card[data-table="${TABLE}"]`, { timeout: 60000 });
  const ws = await page.$eval("#workspace", (s) => s.value);
  await page.click("#new-conversation");
  await page.waitForSelector("#send:not([disabled])");
  await page.fill("#question", "Positives by state, as a chart");
  await page.click("#send");
  await page.waitForSelector('.step[data-kind="answer"]', { timeout: 60000 });
  // Bob joins as a viewer, from the Members panel.
  await page.click("#members summary");
  await page.fill('#member-form input[name="name"]', "bob");
  await page.selectOption("#member-role", "viewer");
  await page.click('#member-form button[type="submit"]');
  await page.waitForSelector('#member-list li[data-member="bob"]');
  // The conversation's link, without its code.
  await page.click("#share-conversation");
  await page.uncheck('.share-form input[name="show_code"]');
  await page.click('.share-form button[type="submit"]');
  const link = await (await page.waitForSelector(".share-url")).inputValue();
  assert.match(link, /\/shared#ql_/);
  const token = link.split("#")[1];
  await page.click("#shares summary");
  await page.waitForSelector('#share-list li[data-open="true"]');
  await page.screenshot({ path: join(shots, "9-shared-by-owner.png"), fullPage: true });

  // A second browser, no account: the answer, its table and chart, nothing else.
  const anon = await browser.newContext();
  const view = await anon.newPage();
  await view.goto(link);
  await view.waitForSelector('.step[data-kind="answer"]', { timeout: 30000 });
  await view.waitForSelector(".answer .chart svg .mark-rect path, .answer .chart canvas", { timeout: 20000 });
  assert.equal(await view.locator(".answer table.grid tbody tr").count(), 4);
  assert.match(await view.textContent("#shared-title"), /Positives by state/);
  assert.equal(await view.locator("#data-panel").isVisible(), false);
  assert.equal(await view.locator("#ask").isVisible(), false);
  assert.equal(await view.locator("pre.code").count(), 0, "no code: the owner unticked it");
  assert.equal(await view.locator(".save-as-analysis, .mark-right").count(), 0);
  const pdf = await view.evaluate(async (t) => {
    const r = await fetch("/api/shared/export/pdf", { headers: { "x-quarry-share": t } });
    return [r.status, new TextDecoder().decode((await r.arrayBuffer()).slice(0, 4))];
  }, token);
  assert.deepEqual(pdf, [200, "%PDF"]);
  assert.equal((await view.evaluate(() => fetch("/api/workspaces").then((r) => r.status))), 401, "the link opens nothing else");
  await view.screenshot({ path: join(shots, "10-shared-link.png"), fullPage: true });

  // Bob, a viewer: reads the conversation, cannot ask.
  const bobCtx = await browser.newContext();
  const bob = await bobCtx.newPage();
  await bob.goto(`${shared}/#ws=${ws}`);
  await bob.fill('#login input[name="name"]', "bob");
  await bob.fill('#login input[name="password"]', "bob-password");
  await bob.click('#login button[type="submit"]');
  await bob.waitForSelector("#app:not([hidden])");
  await bob.selectOption("#workspace", ws);
  await bob.waitForSelector("#viewer-note:not([hidden])");
  assert.equal(await bob.locator("#ask").isVisible(), false);
  assert.equal(await bob.locator("#drop").isVisible(), false);
  assert.equal(await bob.textContent("#role"), "viewer");
  const conv = await page.$eval("#conversation", (s) => s.value);
  await bob.selectOption("#conversation", conv);
  await bob.waitForSelector('.step[data-kind="answer"]');
  const asked = await bob.evaluate(async (c) => (await fetch(`/api/conversations/${c}/questions`, { method: "POST",
    headers: { "content-type": "application/json" }, body: JSON.stringify({ question: "Positives by state" }) })).status, conv);
  assert.equal(asked, 403);
  await bob.screenshot({ path: join(shots, "11-viewer.png"), fullPage: true });

  // Revoked, the link opens nothing; the audit trail shows who did it.
  await page.click('#share-list li[data-open="true"] button');
  await page.waitForSelector('#share-list li[data-open="false"]');
  await view.reload();
  await view.waitForSelector('[data-kind="share-error"]');
  await page.click("#audit summary");
  await page.waitForSelector('#audit-list tr[data-action="unshare"]');
  for (const action of ["upload", "ask", "member", "share"]) assert.ok(await page.locator(`#audit-list tr[data-action="${action}"]`).count() > 0, action);
  // The token was never in a URL the server saw, so no log line holds it.
  for (const c of children) assert.ok(!c.log.includes(token.slice(3)), "a server log holds the share token");
  await Promise.all([ctx.close(), anon.close(), bobCtx.close()]);
});

test("a page from another origin cannot change anything on the loopback server", async () => {
  const { createServer } = await import("node:http");
  const [{ id: ws }] = await (await fetch(`${local}/api/workspaces`)).json();
  const target = `${local}/api/workspaces/${ws}/datasets?name=evil.csv`;
  const before = (await (await fetch(`${local}/api/workspaces/${ws}/datasets`)).json()).length;
  // The attacker's page: an auto-submitted text/plain form, a no-cors fetch
  // with a simple body, and a fetch that tries to read the tables.
  const evil = `<!doctype html><body>
    <iframe name="sink"></iframe>
    <form id="f" method="POST" action="${target}" enctype="text/plain" target="sink"><input name="a,b&#10;1,2&#10;x" value="y"></form>
    <script>
      window.results = {};
      fetch(${JSON.stringify(target)}, { method: "POST", mode: "no-cors", body: "a,b\\n1,2\\n" })
        .then(() => { window.results.post = "sent"; }, (e) => { window.results.post = String(e); });
      fetch(${JSON.stringify(`${local}/api/workspaces/${ws}/tables`)})
        .then((r) => r.text()).then((t) => { window.results.read = t; }, (e) => { window.results.read = "blocked"; });
      document.getElementById("f").submit();
    </script></body>`;
  const server = createServer((req, res) => { res.writeHead(200, { "content-type": "text/html" }); res.end(evil); });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.results && window.results.post && window.results.read, null, { timeout: 20000 });
  await page.waitForTimeout(1000);
  assert.equal(await page.evaluate(() => window.results.read), "blocked", "the other origin cannot read the tables");
  const after = await (await fetch(`${local}/api/workspaces/${ws}/datasets`)).json();
  assert.equal(after.length, before, "no dataset was created");
  assert.ok(!after.some((d) => d.file_name === "evil.csv"));
  await page.close();
  server.close();
});
