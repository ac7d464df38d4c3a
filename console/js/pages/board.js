// Pipeline board: open deals as cards in stage columns. Drag a card (pointer events, so
// mouse, pen and touch all work) or use its dialog to move it; every move is recorded in
// the deal's stage history. Close won or lost with a reason.

import { gql, can, canChange, subscribe } from "../api.js";
import { h, mount, field, select, label, fmtMoney, fmtDateTime, age, badge, loading, empty, toast, dialog, showError, clearErrors } from "../ui.js";

const CARDS = 50;

export async function boardPage(page, params) {
  let meta;
  try {
    meta = await gql(`{ pipelines(first: 20) { nodes { id name } } users(first: 200, orderBy: [{field: NAME, direction: ASC}]) { nodes { id name } } }`);
  } catch (e) {
    mount(page, h("div", { class: "panel" }, e.message));
    return;
  }
  const pipelines = meta.pipelines.nodes;
  const state = { pipeline: params.get("pipeline") || pipelines[0]?.id, owner: params.get("owner") || "" };
  const pipelineSelect = select("pipeline", pipelines.map((p) => [p.id, p.name]), state.pipeline);
  pipelineSelect.id = "board-pipeline";
  pipelineSelect.setAttribute("aria-label", "Pipeline");
  const ownerSelect = select("owner", [["", "All owners"], ...meta.users.nodes.map((u) => [u.id, u.name])], state.owner);
  ownerSelect.id = "board-owner";
  ownerSelect.setAttribute("aria-label", "Owner");
  const board = h("div", { class: "board", id: "board" }, loading());
  const onChange = () => {
    const q = new URLSearchParams();
    if (pipelineSelect.value) q.set("pipeline", pipelineSelect.value);
    if (ownerSelect.value) q.set("owner", ownerSelect.value);
    location.hash = `#/board?${q}`;
  };
  pipelineSelect.addEventListener("change", onChange);
  ownerSelect.addEventListener("change", onChange);
  mount(page,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Pipeline"), h("div", { class: "sub" }, can("write") ? "Drag a card to move a deal; open it to close it." : "Open a card to see its history.")),
      h("div", { class: "toolbar" }, pipelineSelect, ownerSelect)),
    board);
  if (!state.pipeline) return mount(board, empty("No pipeline yet."));
  await draw(board, state);
  // Changes made elsewhere (another person, an app, a sequence) redraw the board, a burst
  // of them once, and never under a card being dragged or an open dialog. A change the
  // board already shows (this page's own move) redraws nothing.
  let pending = null;
  subscribe(`subscription Board($p: ID!) { dealChanged(pipelineId: $p) { id status stage { id } } }`, { p: state.pipeline }, (data) => {
    const d = data.dealChanged;
    const shown = board.querySelector(`.column[data-stage="${d.stage.id}"] .card[data-deal="${d.id}"]`);
    if (shown && d.status === "OPEN") return;
    clearTimeout(pending);
    pending = setTimeout(function later() {
      if (board.querySelector(".card.dragging") || document.querySelector("dialog[open]")) pending = setTimeout(later, 500);
      else draw(board, state);
    }, 250);
  }, board);
  if (params.get("deal")) openDeal(params.get("deal"), () => draw(board, state));
}

async function draw(board, state) {
  const filter = { status: { eq: "OPEN" }, ...(state.owner ? { ownerId: { eq: state.owner } } : {}) };
  let data;
  try {
    data = await gql(`query Board($p: ID!, $owner: ID, $filter: DealFilter) {
      pipeline(id: $p) { id name stages { id name isWon isLost winProbability
        openTotals(ownerId: $owner) { currency deals amount }
        deals(first: ${CARDS}, filter: $filter, orderBy: [{field: AMOUNT_MINOR, direction: DESC}]) {
          totalCount nodes { id name amount currency createdAt owner { id name } contact { name } company { name } winProbability { probability } }
        } } }
    }`, { p: state.pipeline, owner: state.owner || null, filter });
  } catch (e) {
    mount(board, empty(e.message));
    return;
  }
  const stages = data.pipeline.stages.filter((s) => !s.isWon && !s.isLost);
  const redraw = () => draw(board, state);
  mount(board, stages.map((s) => {
    const totals = s.openTotals.map((t) => `${fmtMoney(t.amount, t.currency)}`).join(" + ") || fmtMoney(0, "USD");
    const count = s.openTotals.reduce((n, t) => n + t.deals, 0);
    return h("section", { class: "column", "data-stage": s.id, "aria-label": `${s.name}: ${count} deals, ${totals}` },
      h("div", { class: "column-head" }, h("strong", {}, s.name), h("span", { class: "column-total" }, `${count} · ${totals}`)),
      s.deals.nodes.map((d) => card(d, s, stages, redraw)),
      s.deals.totalCount > CARDS ? h("p", { class: "small muted" }, `and ${s.deals.totalCount - CARDS} more (largest shown)`) : null);
  }));
}

function card(d, stage, stages, redraw) {
  const movable = canChange(d.owner?.id);
  const el = h("article", { class: "card", tabindex: "0", "data-deal": d.id, "aria-label": `${d.name}, ${fmtMoney(d.amount, d.currency)}, in ${stage.name}` },
    h("div", { class: "title" }, d.name),
    h("div", { class: "small muted" }, d.company?.name || d.contact?.name || ""),
    h("div", { class: "meta", style: { marginTop: "6px" } },
      h("span", { class: "amount" }, fmtMoney(d.amount, d.currency)),
      h("span", { title: "Win probability" }, `${Math.round(d.winProbability.probability)}% win`)),
    h("div", { class: "meta" }, h("span", {}, d.owner?.name || "Unassigned"), h("span", { title: "Age" }, age(d.createdAt))));
  el.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      openDeal(d.id, redraw);
    }
  });
  if (movable) dragging(el, d, stage, redraw);
  else el.addEventListener("click", () => openDeal(d.id, redraw));
  return el;
}

/** Pointer drag: a ghost follows the pointer; dropping on another column moves the deal. */
function dragging(el, d, stage, redraw) {
  el.addEventListener("pointerdown", (down) => {
    if (down.button !== 0) return;
    const start = { x: down.clientX, y: down.clientY };
    let ghost = null;
    let over = null;
    const columnAt = (x, y) => {
      if (ghost) ghost.style.display = "none";
      const target = document.elementFromPoint(x, y)?.closest(".column");
      if (ghost) ghost.style.display = "";
      return target;
    };
    const move = (e) => {
      if (!ghost && Math.hypot(e.clientX - start.x, e.clientY - start.y) > 5) {
        const box = el.getBoundingClientRect();
        ghost = el.cloneNode(true);
        ghost.classList.add("card-ghost");
        ghost.style.width = `${box.width}px`;
        document.body.append(ghost);
        el.classList.add("dragging");
      }
      if (!ghost) return;
      ghost.style.left = `${e.clientX - 20}px`;
      ghost.style.top = `${e.clientY - 20}px`;
      const col = columnAt(e.clientX, e.clientY);
      if (col !== over) {
        over?.classList.remove("over");
        over = col;
        over?.classList.add("over");
      }
    };
    // A drag the system took away (pointercancel) or the person called off (Escape)
    // puts the card back and moves nothing.
    const stop = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      window.removeEventListener("pointercancel", cancel);
      window.removeEventListener("keydown", escape);
    };
    const cancel = () => {
      stop();
      ghost?.remove();
      el.classList.remove("dragging");
      over?.classList.remove("over");
    };
    const escape = (e) => {
      if (e.key === "Escape") cancel();
    };
    const up = async (e) => {
      stop();
      if (!ghost) {
        openDeal(d.id, redraw);
        return;
      }
      const col = columnAt(e.clientX, e.clientY);
      ghost.remove();
      el.classList.remove("dragging");
      over?.classList.remove("over");
      if (!col || col.dataset.stage === stage.id) return;
      col.append(el);
      try {
        const moved = await gql(`mutation Move($d: ID!, $s: ID!) { moveDealToStage(dealId: $d, stageId: $s) { id stage { name } } }`, { d: d.id, s: col.dataset.stage });
        toast(`“${d.name}” moved to ${moved.moveDealToStage.stage.name}.`);
      } catch (err) {
        toast(err.message, "error");
      }
      redraw();
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
    window.addEventListener("pointercancel", cancel);
    window.addEventListener("keydown", escape);
  });
}

async function openDeal(id, redraw) {
  let d;
  try {
    d = (await gql(`query Deal($id: ID!) { deal(id: $id) {
      id name amount currency status lostReason createdAt expectedCloseDate owner { id name } contact { id name } company { name }
      winProbability { probability source }
      scores { plugin score reasons { feature note } }
      pipeline { stages { id name isWon isLost } }
      stage { id name }
      stageHistory { id movedAt fromStage { name } toStage { name } movedBy { name } movedByKeyId }
    } }`, { id })).deal;
  } catch (e) {
    toast(e.message, "error");
    return;
  }
  const editable = d.status === "OPEN" && canChange(d.owner?.id);
  const open = d.pipeline.stages.filter((s) => !s.isWon && !s.isLost);
  const stageSelect = select("stageId", open.map((s) => [s.id, s.name]), d.stage?.id);
  const outcome = select("outcome", [["WON", "Won"], ["LOST", "Lost"]], "WON");
  const reason = h("input", { name: "reason", placeholder: "e.g. chose a competitor, budget" });
  const form = h("form", { id: "deal-form", onsubmit: (e) => e.preventDefault() },
    h("dl", { class: "kv" },
      h("dt", {}, "Amount"), h("dd", {}, fmtMoney(d.amount, d.currency)),
      h("dt", {}, "Status"), h("dd", {}, d.status === "OPEN" ? d.stage?.name : badge(label(d.status), d.status === "WON" ? "good" : "bad"), d.lostReason ? ` · ${d.lostReason}` : ""),
      h("dt", {}, "Win chance"), h("dd", {}, `${Math.round(d.winProbability.probability)}% (${label(d.winProbability.source)})`),
      // Scores from plugins of deals (a deal's risk, say), with their strongest reason.
      ...d.scores.flatMap((sc) => [
        h("dt", {}, sc.plugin),
        h("dd", { class: "deal-score" }, `${Math.round(sc.score)}`, sc.reasons[0]?.note ? h("span", { class: "small muted" }, ` · ${sc.reasons[0].note}`) : null)]),
      h("dt", {}, "Contact"), h("dd", {}, d.contact ? h("a", { href: `#/contacts/${d.contact.id}` }, d.contact.name) : "–"),
      h("dt", {}, "Owner"), h("dd", {}, d.owner?.name || "Unassigned")),
    h("h3", { style: { marginTop: "16px" } }, "Stage history"),
    h("ul", { class: "timeline", id: "stage-history" }, [...d.stageHistory].reverse().map((c) => h("li", {},
      h("span", { class: "dot", "aria-hidden": "true" }, "→"),
      h("div", {}, `${c.fromStage ? c.fromStage.name : "Created"} → ${c.toStage?.name || "?"}`, h("div", { class: "small muted" }, c.movedBy ? `by ${c.movedBy.name}` : c.movedByKeyId ? "by an API key" : "")),
      h("span", { class: "when" }, fmtDateTime(c.movedAt))))),
    editable ? h("div", { style: { marginTop: "16px" } },
      h("div", { class: "grid two" }, field("Move to stage", stageSelect), h("div", {})),
      h("h3", {}, "Close the deal"),
      h("div", { class: "grid two" }, field("Outcome", outcome), field("Reason", reason))) : null);
  const actions = [{ label: "Done", value: "close" }];
  if (editable) {
    actions.push({ label: "Close deal", value: "closed", class: "danger", run: async () => {
      clearErrors(form);
      try {
        await gql(`mutation C($id: ID!, $o: DealOutcome!, $r: String) { closeDeal(id: $id, outcome: $o, reason: $r) { id status } }`, { id: d.id, o: outcome.value, r: reason.value || null });
        toast(`Closed as ${outcome.value.toLowerCase()}.`);
        return true;
      } catch (e) {
        showError(form, e);
        return false;
      }
    } });
    actions.push({ label: "Move", value: "moved", class: "primary", run: async () => {
      clearErrors(form);
      if (stageSelect.value === d.stage?.id) return true;
      try {
        await gql(`mutation Move($d: ID!, $s: ID!) { moveDealToStage(dealId: $d, stageId: $s) { id } }`, { d: d.id, s: stageSelect.value });
        toast("Moved.");
        return true;
      } catch (e) {
        showError(form, e);
        return false;
      }
    } });
  }
  const choice = await dialog(d.name, form, actions);
  if (choice === "moved" || choice === "closed") redraw();
}

