// Plugins and models, for developers and admins: upload a component with its input query
// (tried against the live API, with field completion from the schema) and config; each
// plugin's versions, events, circuit breaker, score spread and action acceptance; and
// every built-in model version with its measured quality.

import { gql, can, uploadGraphql } from "../api.js";
import { h, mount, field, label, fmtDateTime, fmtPercent, loading, empty, toast, pageHead, panel, badge, confirm, once } from "../ui.js";
import { codeEditor } from "./templates.js";

const DEFAULT_QUERY = `query Input($contactId: ID!) {
  contact(id: $contactId) {
    id
    lifecycleStage
    tags
  }
}`;

export async function pluginsPage(page) {
  const list = h("div", {}, loading());
  const models = h("div", { id: "models" }, loading());
  mount(page,
    pageHead("Plugins & models", "Scores and next best actions from WebAssembly plugins, and the built-in models.",
      can("admin") ? h("a", { class: "button primary", href: "#/plugins/new", id: "new-plugin" }, "Upload plugin") : null),
    panel("Plugins", list),
    panel("Built-in models", models));
  drawModels(models);
  let plugins;
  try {
    plugins = (await gql(`{ plugins { id name enabled disabledReason consecutiveFailures failureThreshold createdAt activeVersion { version declaredVersion subject implementsScore implementsNextBestActions createdAt } } }`)).plugins;
  } catch (e) {
    return mount(list, empty(e.message));
  }
  if (!plugins.length) return mount(list, empty("No plugin yet. Upload a component built with the Rapport SDK."));
  mount(list, h("div", { class: "table-wrap" }, h("table", { id: "plugins-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "State"), h("th", {}, "Active version"), h("th", {}, "Does"), h("th", {}, "Circuit breaker"))),
    h("tbody", {}, plugins.map((p) => h("tr", { "data-plugin": p.name },
      h("td", {}, h("a", { href: `#/plugins/${encodeURIComponent(p.name)}` }, p.name)),
      h("td", {}, p.enabled ? badge("Enabled", "good") : badge("Disabled", "bad"), p.disabledReason ? h("div", { class: "small muted" }, p.disabledReason) : null),
      h("td", {}, p.activeVersion ? `v${p.activeVersion.version} (${p.activeVersion.declaredVersion})` : "–"),
      h("td", {}, p.activeVersion ? [p.activeVersion.implementsScore ? badge(p.activeVersion.subject === "CONTACT" ? "score" : `${p.activeVersion.subject.toLowerCase()} score`, "accent") : null, " ", p.activeVersion.implementsNextBestActions ? badge("next best actions", "accent") : null] : "–"),
      h("td", {}, breaker(p))))))));
}

function breaker(p) {
  if (!p.enabled && p.disabledReason) return badge("Open", "bad");
  return h("span", {}, badge(p.consecutiveFailures ? "Failing" : "Closed", p.consecutiveFailures ? "warn" : "good"), h("span", { class: "small muted" }, ` ${p.consecutiveFailures}/${p.failureThreshold} failures`));
}

export async function pluginPage(page, name) {
  if (name === "new") return uploadPage(page, null);
  let p;
  try {
    p = (await gql(`query P($n: String!) { plugin(name: $n) { id name enabled disabledReason consecutiveFailures failureThreshold createdAt
      activeVersion { id version }
      versions { id version declaredName declaredVersion implementsScore implementsNextBestActions inputQuery inputCost config limits createdAt }
      events { kind message versionId actorKeyId at }
      scoreDistribution { count mean buckets } }
      actionAcceptance { plugin kind offered accepted rejected acceptanceRate } }`, { n: name }));
  } catch (e) {
    return mount(page, panel("Plugin", empty(e.message)));
  }
  const acceptance = p.actionAcceptance.filter((a) => a.plugin === name);
  p = p.plugin;
  const admin = can("admin");
  const toggle = async (mutation) => {
    try {
      await gql(`mutation T($n: String!) { ${mutation}Plugin(name: $n) { id } }`, { n: name });
      toast(mutation === "enable" ? "Plugin enabled." : "Plugin disabled.");
      pluginPage(page, name);
    } catch (e) {
      toast(e.message, "error");
    }
  };
  mount(page,
    pageHead(p.name, h("span", {}, h("a", { href: "#/plugins" }, "← Plugins & models"), " · ", p.enabled ? badge("Enabled", "good") : badge("Disabled", "bad"), p.activeVersion ? ` · version ${p.activeVersion.version} active` : ""),
      admin ? h("a", { class: "button", href: `#/plugins/new?name=${encodeURIComponent(p.name)}`, id: "upload-version" }, "Upload new version") : null,
      admin ? (p.enabled ? h("button", { type: "button", id: "disable-plugin", onclick: () => toggle("disable") }, "Disable") : h("button", { type: "button", class: "primary", id: "enable-plugin", onclick: () => toggle("enable") }, "Enable")) : null),
    h("div", { class: "grid two" },
      panel("Score spread", p.versions.find((v) => v.id === p.activeVersion?.id)?.implementsScore === false
        ? empty("This plugin gives no score: it offers next best actions (their acceptance is on the right).")
        : distribution(p.scoreDistribution)),
      panel("Circuit breaker", h("div", { class: "stack" }, breaker(p),
        h("p", { class: "small muted" }, `After ${p.failureThreshold} failed calls in a row the plugin is turned off until someone enables it again.`),
        p.disabledReason ? h("div", { class: "form-error" }, p.disabledReason) : null,
        h("h3", {}, "Next best actions: acceptance"),
        acceptance.length ? h("table", { class: "compact" }, h("thead", {}, h("tr", {}, h("th", {}, "Kind"), h("th", { class: "right" }, "Offered"), h("th", { class: "right" }, "Accepted"), h("th", { class: "right" }, "Rejected"), h("th", { class: "right" }, "Rate"))),
          h("tbody", {}, acceptance.map((a) => h("tr", {}, h("td", {}, label(a.kind)), h("td", { class: "right num" }, a.offered), h("td", { class: "right num" }, a.accepted), h("td", { class: "right num" }, a.rejected), h("td", { class: "right num" }, fmtPercent(a.acceptanceRate, 0))))))
          : empty("No action offered yet.")))),
    admin && p.versions.find((v) => v.id === p.activeVersion?.id)?.implementsScore ? panel("Does it predict?", backtestBox(name)) : null,
    panel("Versions", h("div", { class: "table-wrap" }, h("table", { id: "versions-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Version"), h("th", {}, "Declared"), h("th", {}, "Input cost"), h("th", {}, "Uploaded"), h("th", {}, ""))),
      h("tbody", {}, p.versions.map((v) => h("tr", { "data-version": v.version },
        h("td", {}, `v${v.version}`, p.activeVersion?.id === v.id ? [" ", badge("active", "good")] : null),
        h("td", {}, `${v.declaredName} ${v.declaredVersion}`),
        h("td", { class: "num" }, v.inputCost),
        h("td", { class: "small" }, fmtDateTime(v.createdAt)),
        h("td", { class: "right" }, admin && p.activeVersion?.id !== v.id ? h("button", { type: "button", "data-rollback": v.version, onclick: async () => {
          if (!(await confirm("Roll back", `Version ${v.version} becomes the active one and every contact is rescored with it.`, `Use version ${v.version}`))) return;
          try {
            await gql(`mutation R($n: String!, $v: Int!) { rollbackPlugin(name: $n, version: $v) { id } }`, { n: name, v: v.version });
            toast(`Version ${v.version} is active.`);
            pluginPage(page, name);
          } catch (e) {
            toast(e.message, "error");
          }
        } }, "Make active") : null))))))),
    panel("Events", h("ol", { class: "timeline", id: "plugin-events" }, p.events.map((e) => h("li", {},
      h("span", { class: "dot", "aria-hidden": "true" }, e.kind.slice(0, 1).toUpperCase()),
      h("div", {}, h("strong", {}, label(e.kind)), e.message ? h("div", { class: "small" }, e.message) : null, e.actorKeyId ? h("div", { class: "small muted" }, `by key ${e.actorKeyId}`) : null),
      h("span", { class: "when" }, fmtDateTime(e.at)))))));
}

/** The backtest: the active version's scores of a past moment's leads against who
 * converted after it, beside the built-in lead score on the same leads. */
function backtestBox(name) {
  const out = h("div", { id: "backtest" });
  const horizon = h("select", { name: "horizon" }, [30, 60, 90, 180].map((d) => h("option", { value: d, selected: d === 90 }, `${d} days`)));
  const run = h("button", { type: "button", id: "run-backtest" }, "Measure");
  const measure = async () => {
    run.disabled = true;
    mount(out, loading());
    try {
      const b = (await gql(`query B($n: String!, $h: Int) { plugin(name: $n) { backtest(horizonDays: $h) {
        version asOf pointInTime horizonDays leads failed
        plugin { scored converted auc lift calibration { from to leads conversionRate } }
        builtIn { modelVersion overlapsTraining quality { scored converted auc lift } } } } }`, { n: name, h: Number(horizon.value) })).plugin.backtest;
      const num = (x, digits) => (x == null ? "–" : x.toFixed(digits));
      const row = (label2, q) => h("tr", {}, h("td", {}, label2), h("td", { class: "right num" }, num(q.auc, 3)), h("td", { class: "right num" }, q.lift == null ? "–" : `${q.lift.toFixed(1)}×`),
        h("td", { class: "right num" }, q.scored.toLocaleString("en-US")), h("td", { class: "right num" }, fmtPercent(q.scored ? q.converted / q.scored : null, 1)));
      mount(out, h("div", { class: "stack", id: "backtest-result" },
        h("p", { class: "small" }, `Leads of ${fmtDateTime(b.asOf)} scored as of then; converted means a won deal or an order within ${b.horizonDays} days after.`),
        h("table", { class: "compact" },
          h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", { class: "right" }, "AUC"), h("th", { class: "right" }, "Lift, top 10%"), h("th", { class: "right" }, "Leads"), h("th", { class: "right" }, "Converted"))),
          h("tbody", {}, row(`This plugin, v${b.version}`, b.plugin),
            b.builtIn ? row(`Built-in lead score, v${b.builtIn.modelVersion}`, b.builtIn.quality) : null)),
        b.pointInTime ? null : h("div", { class: "form-error" }, "Its input query does not declare $asOf, so it read today's data: these figures flatter it."),
        b.builtIn?.overlapsTraining ? h("p", { class: "small muted" }, "The built-in model learned from this window, which flatters it too.") : null,
        b.builtIn ? null : h("p", { class: "small muted" }, "No built-in lead score is active to compare with: train one under Plugins & models."),
        b.failed ? h("p", { class: "small muted" }, `${b.failed} calls failed.`) : null,
        h("h3", {}, "Conversion by score band"),
        h("div", { class: "chart-x" }, b.plugin.calibration.map((c) => h("span", { title: `${c.leads} leads` }, `${c.from}–${c.to}: ${fmtPercent(c.conversionRate, 0)}`)))));
    } catch (e) {
      mount(out, h("div", { class: "form-error" }, e.message));
    } finally {
      run.disabled = false;
    }
  };
  run.addEventListener("click", measure);
  return h("div", { class: "stack" },
    h("p", { class: "small muted" }, "Scores the leads of a past moment as of that moment and compares with who converted, beside the built-in lead score. Nothing is stored."),
    h("div", { class: "row" }, field("Outcome window", horizon), run), out);
}

function distribution(d) {
  if (!d.count) return empty("No contact scored yet.");
  const max = Math.max(1, ...d.buckets);
  return h("div", { id: "score-distribution" },
    h("div", { class: "stat" }, h("span", { class: "value" }, d.mean.toFixed(1)), h("span", { class: "label" }, `mean score over ${d.count.toLocaleString("en-US")} contacts`)),
    h("div", { class: "chart", style: { marginTop: "10px" } }, d.buckets.map((n, i) => h("div", { class: "col", title: `${i * 10}–${i * 10 + 10}: ${n}` },
      h("div", { class: "b", style: { height: `${(100 * n) / max}%` } })))),
    h("div", { class: "chart-x" }, d.buckets.map((_, i) => h("span", {}, `${i * 10}`))));
}

let schemaTypes = null;
/** Types and their fields, for completing an input query. */
async function loadSchema() {
  if (schemaTypes) return schemaTypes;
  const data = await gql(`{ __schema { queryType { name } types { name kind fields { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }`);
  const named = (t) => (t.name ? t.name : named(t.ofType));
  schemaTypes = { root: data.__schema.queryType.name, types: new Map(data.__schema.types.filter((t) => t.fields).map((t) => [t.name, new Map(t.fields.map((f) => [f.name, named(f.type)]))])) };
  return schemaTypes;
}

/** The type whose fields may be typed at the end of `text` (a query up to the caret). */
export function typeAt(text, schema) {
  const stack = [schema.root];
  let word = "";
  let last = null;
  let depth = 0;
  for (const ch of text.replace(/#[^\n]*/g, "")) {
    if (ch === "(") depth++;
    else if (ch === ")") depth--;
    if (depth > 0) continue;
    if (/[A-Za-z0-9_]/.test(ch)) { word += ch; continue; }
    if (word) { last = word; word = ""; }
    if (ch === "{") {
      const parent = stack[stack.length - 1];
      const fields = schema.types.get(parent);
      stack.push(stack.length === 1 && !fields?.has(last) ? parent : fields?.get(last) || parent);
    } else if (ch === "}") {
      stack.pop();
    }
  }
  // `query Input($contactId: ID!) {` opens the root, not a field.
  return { type: stack[stack.length - 1], prefix: word };
}

async function uploadPage(page) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const name = h("input", { name: "name", value: params.get("name") || "", required: true, placeholder: "e.g. lead-fit" });
  const wasm = h("input", { name: "wasm", type: "file", accept: ".wasm,application/wasm", required: true });
  const query = codeEditor("inputQuery", DEFAULT_QUERY, 12, "Input query (one $contactId variable)");
  const config = codeEditor("config", "{}", 4, "Config (JSON)");
  const threshold = h("input", { name: "failureThreshold", type: "number", min: "1", max: "1000", value: "5" });
  const suggestions = h("div", { class: "palette", id: "query-suggestions", "aria-live": "polite" });
  const tried = h("div", { id: "query-result" });
  const outcome = h("div", { id: "upload-outcome" });
  const form = h("form", { id: "plugin-form", onsubmit: (e) => e.preventDefault() });
  const schema = await loadSchema().catch(() => null);
  const suggest = () => {
    if (!schema) return;
    const area = query.area;
    const { type, prefix } = typeAt(area.value.slice(0, area.selectionStart), schema);
    const fields = [...(schema.types.get(type)?.keys() || [])].filter((f) => !f.startsWith("__") && f.startsWith(prefix)).slice(0, 14);
    mount(suggestions, fields.length ? [h("span", { class: "small muted" }, `${type}: `), fields.map((f) => h("button", { type: "button", class: "chip", onclick: () => {
      const at = area.selectionStart;
      area.setRangeText(f.slice(prefix.length), at, at, "end");
      area.focus();
      suggest();
    } }, f))] : null);
  };
  query.area.addEventListener("keyup", suggest);
  query.area.addEventListener("click", suggest);
  const tryQuery = async () => {
    query.clear();
    // Only a query: this runs with the signed-in person's rights, and a mutation pasted
    // here would change data.
    const text = query.area.value.replace(/#[^\n]*/g, "").trim();
    if (!/^(query\b|\{)/.test(text)) {
      query.mark(null, "the input query must be a query (it starts with `query` or `{`)");
      return false;
    }
    const first = (await gql(`{ contacts(first: 1) { nodes { id } } }`).catch(() => null))?.contacts.nodes[0];
    try {
      const data = await gql(query.area.value, { contactId: first?.id || "0" });
      mount(tried, h("div", { class: "small muted" }, `What the plugin receives for contact ${first?.id || "–"}:`), h("pre", { class: "email-text" }, JSON.stringify(data, null, 2)));
      return true;
    } catch (e) {
      const loc = e.errors?.[0]?.locations?.[0];
      query.mark(loc?.line ?? null, e.message);
      mount(tried);
      return false;
    }
  };
  mount(form,
    h("div", { class: "grid two" }, field("Name", name), field("Component (.wasm)", wasm)),
    query.box, suggestions,
    h("div", { class: "row" }, h("button", { type: "button", id: "try-query", onclick: once(tryQuery) }, "Try the query")), tried,
    config.box,
    field("Failures in a row that turn it off", threshold),
    h("div", { class: "row" }, h("button", { type: "button", class: "primary", id: "upload-plugin", onclick: once(async () => {
      let configValue;
      try {
        configValue = JSON.parse(config.area.value || "{}");
        config.clear();
      } catch (e) {
        return config.mark(null, `The config is not JSON: ${e.message}`);
      }
      if (!wasm.files[0]) return toast("Choose the .wasm component first.", "error");
      mount(outcome, loading());
      try {
        const data = await uploadGraphql(`mutation R($name: String!, $wasm: Upload!, $q: String!, $config: JSON, $t: Int) {
          registerPlugin(name: $name, wasm: $wasm, inputQuery: $q, config: $config, failureThreshold: $t) { name activeVersion { version } events { kind message } } }`,
        { name: name.value, q: query.area.value, config: configValue, t: Number(threshold.value) || null }, "wasm", wasm.files[0]);
        const p = data.registerPlugin;
        const sample = p.events.find((e) => e.kind === "registered");
        mount(outcome, h("div", { class: "panel ok-box" }, h("strong", {}, `${p.name} version ${p.activeVersion.version} is active.`),
          sample?.message ? h("div", { class: "small", id: "sample-run" }, sample.message) : null,
          h("div", {}, h("a", { href: `#/plugins/${encodeURIComponent(p.name)}` }, "Open the plugin"))));
      } catch (e) {
        if (e.field === "inputQuery") query.mark(null, e.message);
        mount(outcome, h("div", { class: "form-error", role: "alert" }, e.message));
      }
    }) }, "Upload and activate")),
    outcome);
  mount(page, pageHead("Upload a plugin", h("a", { href: "#/plugins" }, "← Plugins & models")),
    h("div", { class: "grid side-main reverse" }, panel("Component", form),
      panel("How it works", h("div", { class: "small stack" },
        h("p", {}, "The component must implement the rapport:plugin world (score, next best actions, or both). Build one with the SDK: ", h("code", {}, "rapport plugin new"), "."),
        h("p", {}, "Before it is stored, Rapport compiles it, checks its imports, and runs it on the workspace's first contact within its fuel and memory limits. The sample run's answer appears here."),
        h("p", {}, "The input query runs for each contact with ", h("code", {}, "$contactId"), "; what it returns is the plugin's input. Try it before uploading.")))));
  suggest();
}

const TRAINING = "id kind state stage progress error version { version status message }";

async function drawModels(box) {
  let models;
  let trainings;
  try {
    ({ models, modelTrainings: trainings } = await gql(`{ models { id kind version status message auc logLoss metrics rows positives trainedAt activatedAt } modelTrainings(first: 20) { ${TRAINING} } }`));
  } catch (e) {
    return mount(box, empty(e.message));
  }
  const manager = can("manage");
  const kinds = ["LEAD_SCORE", "WIN_PROBABILITY", "CHURN", "CUSTOMER_VALUE", "RECOMMENDATIONS", "BEHAVIOUR_SEGMENTS"];
  // A training shows in its model's first row until it ends, then the table redraws.
  const follow = (cell, training) => {
    const bar = h("div", { class: "bar small-bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": "Training progress" }, h("span", {}));
    const stage = h("div", { class: "small muted" });
    const show = (t) => {
      bar.setAttribute("aria-valuenow", String(Math.round(t.progress * 100)));
      bar.firstChild.style.width = `${Math.round(t.progress * 100)}%`;
      stage.textContent = `${label(t.state)}: ${t.stage}`;
    };
    show(training);
    mount(cell, h("div", { class: "training", "data-training": training.id }, bar, stage));
    const poll = async () => {
      if (!cell.isConnected) return;
      let t;
      try {
        t = (await gql(`query T($id: ID!) { modelTraining(id: $id) { ${TRAINING} } }`, { id: training.id })).modelTraining;
      } catch {
        return setTimeout(poll, 2000);
      }
      show(t);
      if (t.state === "DONE") {
        toast(`${label(t.kind)}: version ${t.version?.version} ${label(t.version?.status || "").toLowerCase()}${t.version?.message ? ` (${t.version.message})` : ""}.`);
        return drawModels(box);
      }
      if (t.state === "FAILED") {
        toast(`${label(t.kind)}: training failed (${t.error}).`, "error");
        return drawModels(box);
      }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 1000);
  };
  const trainCell = (kind) => {
    const cell = h("div", {});
    const running = trainings.find((t) => t.kind === kind && (t.state === "QUEUED" || t.state === "RUNNING"));
    if (running) follow(cell, running);
    else if (manager) {
      mount(cell, h("button", { type: "button", "data-train": kind, onclick: async () => {
        try {
          const t = (await gql(`mutation T($k: ModelKind!) { startModelTraining(kind: $k) { ${TRAINING} } }`, { k: kind })).startModelTraining;
          follow(cell, t);
        } catch (e) {
          toast(e.message, "error");
        }
      } }, "Train now"));
    }
    return cell;
  };
  mount(box, h("div", { class: "table-wrap" }, h("table", { id: "models-table" },
    h("thead", {}, h("tr", {}, ["Model", "Version", "Status", "AUC", "Calibration", "Holdout error", "Rows", "Trained", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, kinds.flatMap((kind) => {
      const versions = models.filter((m) => m.kind === kind).sort((a, b) => b.version - a.version).slice(0, 4);
      if (!versions.length) return [h("tr", {}, h("td", {}, label(kind)), h("td", { colspan: "7", class: "muted" }, "Not trained yet."), h("td", { class: "right" }, trainCell(kind)))];
      return versions.map((m, i) => h("tr", { "data-model": m.id },
        h("td", {}, i === 0 ? label(kind) : ""),
        h("td", {}, `v${m.version}`),
        h("td", {}, badge(label(m.status), m.status === "ACTIVE" ? "good" : m.status === "INSUFFICIENT_DATA" ? "warn" : ""), m.message ? h("div", { class: "small muted" }, m.message) : null),
        h("td", { class: "num" }, m.auc != null ? m.auc.toFixed(3) : "–"),
        h("td", { class: "num" }, calibration(m.metrics)),
        h("td", { class: "num" }, holdout(m)),
        h("td", { class: "num" }, m.rows.toLocaleString("en-US")),
        h("td", { class: "small" }, fmtDateTime(m.trainedAt)),
        h("td", { class: "right" }, i === 0 ? trainCell(kind) : null, can("admin") && m.status === "CANDIDATE" ? h("button", { type: "button", onclick: async () => {
          try {
            await gql(`mutation A($id: ID!) { activateModel(id: $id) { id } }`, { id: m.id });
            toast(`Version ${m.version} is active.`);
            drawModels(box);
          } catch (e) {
            toast(e.message, "error");
          }
        } }, "Activate") : null)));
    })))));
}

/** Expected calibration error from the calibration bins: how far predicted
 * probabilities sit from what happened, weighted by rows. */
export function calibration(metrics) {
  const bins = metrics?.calibration;
  if (!Array.isArray(bins) || !bins.length) return "–";
  const rows = bins.reduce((n, b) => n + b.rows, 0);
  if (!rows) return "–";
  const ece = bins.reduce((n, b) => n + b.rows * Math.abs(b.predicted - b.observed), 0) / rows;
  return `ECE ${ece.toFixed(3)}`;
}

function holdout(m) {
  const e = m.metrics?.holdout_error;
  if (e != null) return `${fmtPercent(e, 1)} off`;
  return m.logLoss != null ? `log loss ${m.logLoss.toFixed(3)}` : "–";
}
