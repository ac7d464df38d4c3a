// Home: the sales funnel of a pipeline over a period (with the deals and contacts behind
// each number), the revenue forecast with its backtested error, cohort retention, and the
// open tasks due this week.

import { gql } from "../api.js";
import { h, mount, fmtMoney, fmtNumber, fmtPercent, fmtDate, loading, empty, dialog, badge, toast } from "../ui.js";

const PERIODS = [["30", "Last 30 days"], ["90", "Last 90 days"], ["180", "Last 6 months"], ["365", "Last 12 months"], ["all", "All time"]];

export async function homePage(page) {
  const pipelineSelect = h("select", { id: "funnel-pipeline", "aria-label": "Pipeline" });
  const periodSelect = h("select", { id: "funnel-period", "aria-label": "Period" }, PERIODS.map(([v, t]) => h("option", { value: v, selected: v === "365" }, t)));
  const funnelBox = h("div", {}, loading());
  const forecastBox = h("div", {}, loading());
  const cohortBox = h("div", {}, loading());
  const tasksBox = h("div", {}, loading());
  mount(page,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Home"), h("div", { class: "sub" }, "How the pipeline converts, what revenue to expect, who stays."))),
    h("section", { class: "panel", "aria-labelledby": "funnel-title" },
      h("div", { class: "panel-head" }, h("h2", { id: "funnel-title" }, "Sales funnel"), h("div", { class: "toolbar" }, pipelineSelect, periodSelect)),
      funnelBox),
    h("div", { class: "grid two", style: { marginTop: "16px" } },
      h("section", { class: "panel", "aria-labelledby": "forecast-title" }, h("h2", { id: "forecast-title" }, "Revenue forecast"), forecastBox),
      h("section", { class: "panel", "aria-labelledby": "tasks-title" }, h("h2", { id: "tasks-title" }, "Open tasks due this week"), tasksBox)),
    h("section", { class: "panel", "aria-labelledby": "cohort-title", style: { marginTop: "16px" } }, h("h2", { id: "cohort-title" }, "Customer retention by first-purchase month"), cohortBox));

  const week = new Date(Date.now() + 7 * 864e5).toISOString();
  let data;
  try {
    data = await gql(`query Home($week: DateTime!) {
      pipelines(first: 20) { nodes { id name } }
      forecast(period: MONTH, months: 6) {
        revenue { currency method history { period amount } forecast { period amount } backtestMape backtestMonths }
        pipeline { period currency deals amount weighted }
      }
      cohorts(months: 12) { month customers retention }
      tasks(first: 50, filter: { status: { eq: OPEN }, dueAt: { lte: $week } }) {
        totalCount
        nodes { id title dueAt assignee { name } contact { id name } deal { name } }
      }
    }`, { week });
  } catch (e) {
    mount(funnelBox, empty(e.message));
    return;
  }
  const pipelines = data.pipelines.nodes;
  mount(pipelineSelect, pipelines.map((p) => h("option", { value: p.id }, p.name)));
  const refresh = () => funnel(funnelBox, pipelineSelect.value, periodSelect.value);
  pipelineSelect.addEventListener("change", refresh);
  periodSelect.addEventListener("change", refresh);
  if (pipelines.length) refresh();
  else mount(funnelBox, empty("No pipeline yet."));
  forecast(forecastBox, data.forecast);
  cohorts(cohortBox, data.cohorts);
  tasks(tasksBox, data.tasks);
}

function range(period) {
  if (period === "all") return {};
  return { from: new Date(Date.now() - Number(period) * 864e5).toISOString() };
}

async function funnel(box, pipelineId, period) {
  mount(box, loading());
  let groups;
  try {
    ({ salesFunnel: groups } = await gql(`query Funnel($p: ID!, $from: DateTime) {
      salesFunnel(pipelineId: $p, from: $from) {
        deals won lost winRate
        stages { stage { id name isWon isLost } entered reached current conversionToNext dropOff medianHoursInStage }
      }
    }`, { p: pipelineId, ...range(period) }));
  } catch (e) {
    mount(box, empty(e.message));
    return;
  }
  const g = groups[0];
  if (!g || !g.deals) return mount(box, empty("No deals were created in this period."));
  const top = Math.max(1, ...g.stages.map((s) => s.reached));
  mount(box,
    h("div", { class: "grid three", style: { marginBottom: "14px" } },
      stat(fmtNumber(g.deals), "Deals created"),
      stat(fmtNumber(g.won), "Won"),
      stat(fmtPercent(g.winRate, 1), "Win rate of closed deals")),
    h("div", { role: "table", "aria-label": "Funnel stages" },
      h("div", { class: "funnel-row small muted", role: "row" }, h("span", { role: "columnheader" }, "Stage"), h("span", { role: "columnheader" }, "Reached (entered)"), h("span", { role: "columnheader" }, "Conversion · drop-off · median time")),
      g.stages.map((s, i) => h("div", { class: "funnel-row", role: "row" },
        h("strong", { role: "cell" }, s.stage.name),
        h("div", { role: "cell" },
          h("div", { class: "bar", title: `${s.reached} reached` }, h("span", { style: { width: `${(100 * s.reached) / top}%` } })),
          h("div", { class: "bar-label" },
            h("button", { type: "button", class: "link", "data-stage": i, onclick: () => drill(pipelineId, period, i, s.stage.name) }, `${fmtNumber(s.reached)} reached`),
            ` · ${fmtNumber(s.entered)} entered · ${fmtNumber(s.current)} here now`)),
        s.stage.isWon || s.stage.isLost ? h("div", { role: "cell", class: "small muted" }, s.stage.isWon ? "closed won" : "closed lost") : h("div", { role: "cell", class: "small num" },
          s.conversionToNext === null ? "–" : `${fmtPercent(s.conversionToNext)} on`,
          " · ", s.dropOff === null ? "–" : `${fmtPercent(s.dropOff)} drop`,
          " · ", s.medianHoursInStage === null ? "–" : hours(s.medianHoursInStage))))));
}

function hours(n) {
  return n >= 48 ? `${(n / 24).toFixed(1)} d` : `${n.toFixed(0)} h`;
}

function stat(value, text) {
  return h("div", { class: "stat" }, h("span", { class: "value" }, value), h("span", { class: "label" }, text));
}

async function drill(pipelineId, period, index, name) {
  let stage;
  try {
    const data = await gql(`query Drill($p: ID!, $from: DateTime) {
      salesFunnel(pipelineId: $p, from: $from) { stages { deals(first: 50) { id name amount currency status owner { name } contact { id name } }
        contacts(first: 50) { id name email } } }
    }`, { p: pipelineId, ...range(period) });
    stage = data.salesFunnel[0].stages[index];
  } catch (e) {
    toast(e.message, "error");
    return;
  }
  const body = h("div", { class: "stack" },
    h("h3", {}, `Deals (${stage.deals.length}${stage.deals.length === 50 ? "+" : ""})`),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Deal"), h("th", {}, "Contact"), h("th", {}, "Owner"), h("th", { class: "right" }, "Amount"))),
      h("tbody", {}, stage.deals.map((d) => h("tr", {},
        h("td", {}, d.name, " ", d.status !== "OPEN" ? badge(d.status.toLowerCase(), d.status === "WON" ? "good" : "bad") : null),
        h("td", {}, d.contact ? h("a", { href: `#/contacts/${d.contact.id}` }, d.contact.name) : "–"),
        h("td", {}, d.owner?.name || "–"),
        h("td", { class: "right num" }, fmtMoney(d.amount, d.currency))))))),
    h("h3", {}, `Contacts (${stage.contacts.length})`),
    h("p", {}, stage.contacts.map((c, i) => [i ? ", " : "", h("a", { href: `#/contacts/${c.id}` }, c.name)])));
  body.addEventListener("click", (e) => {
    if (e.target.closest("a")) e.target.closest("dialog")?.close();
  });
  await dialog(`Reached “${name}”`, body, [{ label: "Close", value: "close" }]);
}

function forecast(box, f) {
  const r = f.revenue[0];
  if (!r) return mount(box, empty("No closed-won revenue yet: the forecast starts with the first won deal."));
  const points = [...r.history.slice(-9).map((p) => ({ ...p, future: false })), ...r.forecast.map((p) => ({ ...p, future: true }))];
  const top = Math.max(1, ...points.map((p) => p.amount));
  const open = f.pipeline.filter((p) => p.currency === r.currency);
  const weighted = open.reduce((sum, p) => sum + p.weighted, 0);
  mount(box,
    h("div", { class: "grid three", style: { marginBottom: "12px" } },
      stat(fmtMoney(r.forecast.reduce((s, p) => s + p.amount, 0), r.currency), `Next ${r.forecast.length} months`),
      stat(r.backtestMape === null ? "–" : `±${fmtPercent(r.backtestMape)}`, `Backtested error (${r.backtestMonths} months)`),
      stat(fmtMoney(weighted, r.currency), "Weighted open pipeline")),
    h("div", { class: "chart", role: "img", "aria-label": `Monthly revenue: ${points.map((p) => `${p.period} ${p.future ? "forecast " : ""}${Math.round(p.amount)}`).join(", ")}` },
      points.map((p) => h("div", { class: `col${p.future ? " future" : ""}`, title: `${p.period}: ${fmtMoney(p.amount, r.currency)}${p.future ? " (forecast)" : ""}` },
        h("div", { class: "b", style: { height: `${(100 * p.amount) / top}%` } })))),
    h("div", { class: "chart-x", "aria-hidden": "true" }, points.map((p) => h("span", {}, p.period.slice(2)))),
    h("div", { class: "legend" }, h("span", {}, h("i", { style: { background: "#9fb2f5" } }), "Won revenue"), h("span", {}, h("i", { style: { background: "#3b5bdb" } }), `Forecast (${r.method || "model"}, striped)`)));
}

function cohorts(box, rows) {
  const list = rows.filter((c) => c.customers > 0);
  if (!list.length) return mount(box, empty("No orders yet."));
  const width = Math.max(...list.map((c) => c.retention.length));
  mount(box, h("div", { class: "table-wrap" }, h("table", { class: "heat" },
    h("caption", { class: "sr-only" }, "Share of each cohort still buying, by months since the first purchase"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Cohort"), h("th", { scope: "col" }, "Customers"), Array.from({ length: width }, (_, i) => h("th", { scope: "col" }, `M${i}`)))),
    h("tbody", {}, list.map((c) => h("tr", {},
      h("th", { scope: "row" }, c.month),
      h("td", { class: "num" }, fmtNumber(c.customers)),
      Array.from({ length: width }, (_, i) => {
        const v = c.retention[i];
        if (v === undefined) return h("td", {});
        const shade = Math.round(245 - v * 170);
        return h("td", { style: { background: `rgb(${shade}, ${Math.round(shade + (255 - shade) * 0.15)}, 255)`, color: v > 0.55 ? "#fff" : "#1c2230" } }, fmtPercent(v));
      })))))));
}

function tasks(box, t) {
  const rows = [...t.nodes].sort((a, b) => String(a.dueAt).localeCompare(String(b.dueAt)));
  if (!rows.length) return mount(box, empty("Nothing due this week."));
  const now = Date.now();
  mount(box, h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Task"), h("th", {}, "For"), h("th", {}, "Assignee"), h("th", {}, "Due"))),
    h("tbody", {}, rows.slice(0, 12).map((task) => h("tr", {},
      h("td", {}, task.title),
      h("td", {}, task.contact ? h("a", { href: `#/contacts/${task.contact.id}` }, task.contact.name) : task.deal?.name || "–"),
      h("td", {}, task.assignee?.name || "–"),
      h("td", {}, fmtDate(task.dueAt), " ", new Date(task.dueAt).getTime() < now ? badge("overdue", "bad") : null)))))),
  t.totalCount > 12 ? h("p", { class: "small muted", style: { marginTop: "8px" } }, `${t.totalCount - 12} more due this week.`) : null);
}
