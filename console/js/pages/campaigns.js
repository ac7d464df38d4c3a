// Campaigns: the list, the builder (segment, A/B variants written or taken from a
// template, sender and rate), what a send would reach and a test send, then live
// progress, per-variant results, messages with their state, and the controls.

import { gql, can, currentSession, subscribe } from "../api.js";
import { h, mount, field, select, label, fmtDateTime, fmtPercent, loading, empty, toast, pageHead, panel, statusBadge, every, showError, clearErrors, confirm, navigate, latest, once } from "../ui.js";
import { codeEditor, templateVariables, variableMenu, renderedView, firstContact, contactPicker } from "./templates.js";

const CAMPAIGN = `id name status statusReason fromEmail fromName ratePerSecond scheduledAt startedAt finishedAt createdAt winnerVariantId
  segment { id name } topic { id name }
  abTest { testShare waitMinutes metric }
  variants { id name weight subject html text }`;
const STATS = "variantId recipients pending sent skipped failed unknown bounced uniqueOpens uniqueClicks unsubscribes openRate clickRate bounceRate unsubscribeRate";

export async function campaignsPage(page) {
  const list = h("div", {}, loading());
  mount(page,
    pageHead("Campaigns", "One email, in A/B variants, to a segment.",
      can("write") ? h("a", { class: "button primary", href: "#/campaigns/new", id: "new-campaign" }, "New campaign") : null),
    panel("All campaigns", list));
  let campaigns;
  try {
    campaigns = (await gql(`{ campaigns { id name status createdAt startedAt segment { name } stats { recipients sent openRate clickRate } } }`)).campaigns;
  } catch (e) {
    return mount(list, empty(e.message));
  }
  if (!campaigns.length) return mount(list, empty("No campaign yet."));
  mount(list, h("div", { class: "table-wrap" }, h("table", { id: "campaigns-table" },
    h("thead", {}, h("tr", {}, ["Name", "Status", "Segment", "Sent", "Opens", "Clicks", "Started"].map((t, i) => h("th", { class: i >= 3 && i <= 5 ? "right" : "" }, t)))),
    h("tbody", {}, campaigns.map((c) => h("tr", { "data-campaign": c.id },
      h("td", {}, h("a", { href: `#/campaigns/${c.id}` }, c.name)),
      h("td", {}, statusBadge(c.status)),
      h("td", {}, c.segment?.name || "–"),
      h("td", { class: "right num" }, c.stats.recipients ? `${c.stats.sent.toLocaleString("en-US")} / ${c.stats.recipients.toLocaleString("en-US")}` : "–"),
      h("td", { class: "right num" }, c.stats.sent ? fmtPercent(c.stats.openRate, 1) : "–"),
      h("td", { class: "right num" }, c.stats.sent ? fmtPercent(c.stats.clickRate, 1) : "–"),
      h("td", { class: "small" }, c.startedAt ? fmtDateTime(c.startedAt) : "Not sent")))))));
}

export async function campaignPage(page, id) {
  if (id === "new") return builder(page, null);
  let c;
  try {
    c = (await gql(`query C($id: ID!) { campaign(id: $id) { ${CAMPAIGN} } }`, { id })).campaign;
  } catch (e) {
    return mount(page, panel("Campaign", empty(e.message)));
  }
  if (c.status === "DRAFT") return builder(page, c);
  return results(page, c);
}

// ---- Builder -------------------------------------------------------------------------

async function builder(page, c) {
  const writable = can("write");
  let meta;
  try {
    meta = await gql(`{ segments { id name } emailTemplates { id name subject html text } emailTopics { id name } }`);
  } catch (e) {
    return mount(page, panel("Campaign", empty(e.message)));
  }
  const vars = await templateVariables().catch(() => []);
  const form = h("form", { id: "campaign-form", onsubmit: (e) => e.preventDefault() });
  const name = h("input", { name: "name", value: c?.name || "", required: true, placeholder: "e.g. Spring launch" });
  const fromEmail = h("input", { name: "fromEmail", type: "email", value: c?.fromEmail || "", placeholder: "news@yourcompany.com" });
  const fromName = h("input", { name: "fromName", value: c?.fromName || "", placeholder: "Your company" });
  const segment = select("segmentId", [["", "Choose a segment…"], ...meta.segments.map((s) => [s.id, s.name])], c?.segment?.id || "");
  const segmentCount = h("div", { class: "small muted", id: "segment-size" });
  const topic = select("topicId", [["", "No topic"], ...meta.emailTopics.map((t) => [t.id, t.name])], c?.topic?.id || "");
  const rate = h("input", { name: "ratePerSecond", type: "number", min: "1", max: "1000", value: c?.ratePerSecond ?? "", placeholder: "As fast as allowed" });
  const abOn = h("input", { type: "checkbox", name: "abOn", id: "ab-on", checked: !!c?.abTest });
  const share = h("input", { name: "testShare", type: "number", min: "1", max: "99", value: c?.abTest ? Math.round(c.abTest.testShare * 100) : 20 });
  const wait = h("input", { name: "waitMinutes", type: "number", min: "1", max: "10080", value: c?.abTest?.waitMinutes ?? 240 });
  const metric = select("metric", [["OPEN", "Unique opens"], ["CLICK", "Unique clicks"]], c?.abTest?.metric || "OPEN");
  const abBox = h("div", { class: "filters", hidden: !c?.abTest },
    field("Test share (%)", share), field("Pick the winner after (minutes)", wait), field("Winner by", metric));
  abOn.addEventListener("change", () => { abBox.hidden = !abOn.checked; });

  const variants = (c?.variants?.length ? c.variants : [{ name: "A", weight: 1, subject: "", html: "", text: "" }]).map((v) => ({ ...v }));
  const variantsBox = h("div", { id: "variants" });
  let sample = null;
  const drawVariants = () => {
    mount(variantsBox, variants.map((v, i) => variantCard(v, i, meta.emailTemplates, vars, () => sample, variants.length > 1 ? () => { variants.splice(i, 1); drawVariants(); } : null)),
      h("button", { type: "button", id: "add-variant", onclick: () => {
        const first = variants[0]?.editors;
        variants.push({ name: String.fromCharCode(65 + variants.length), weight: 1, subject: first?.subject.area.value || "", html: first?.html.area.value || "", text: first?.text.area.value || "" });
        abOn.checked = true;
        abBox.hidden = false;
        drawVariants();
      } }, "+ Add variant"));
  };
  segment.addEventListener("change", () => sizeOf(segment.value, segmentCount));

  const input = () => ({
    name: name.value, fromEmail: fromEmail.value, fromName: fromName.value || null,
    segmentId: segment.value || null, topicId: topic.value || null,
    ratePerSecond: rate.value ? Number(rate.value) : null,
    abTest: abOn.checked ? { testShare: Number(share.value) / 100, waitMinutes: Number(wait.value), metric: metric.value } : null,
    variants: variants.map((v) => ({ name: v.name, weight: Number(v.weight) || 1, subject: v.editors.subject.area.value, html: v.editors.html.area.value, text: v.editors.text.area.value })),
  });
  const save = async () => {
    clearErrors(form);
    variants.forEach((v) => Object.values(v.editors).forEach((e) => e.clear()));
    try {
      if (!c) {
        const created = (await gql(`mutation C($input: CampaignInput!) { createCampaign(input: $input) { id } }`, { input: input() })).createCampaign;
        toast("Draft saved.");
        navigate(`#/campaigns/${created.id}`);
        return created.id;
      }
      await gql(`mutation U($id: ID!, $input: CampaignInput!) { updateCampaign(id: $id, input: $input) { id } }`, { id: c.id, input: input() });
      toast("Draft saved.");
      reach(c.id, reachBox);
      return c.id;
    } catch (e) {
      // `variants[1].html: …`: mark the line in that variant's editor.
      const m = String(e.field || "").match(/^variants\[(\d+)\]\.(subject|html|text)$/) || String(e.message).match(/^variants\[(\d+)\]\.(subject|html|text): /);
      if (m && variants[Number(m[1])]) {
        variants[Number(m[1])].editors[m[2]].mark(e.errors?.[0]?.extensions?.line ?? null, String(e.message).replace(/^[^:]*: /, ""));
      } else {
        showError(form, e);
      }
      return null;
    }
  };

  const reachBox = h("div", { id: "campaign-reach" }, c ? loading() : empty("Save the draft to see whom it reaches."));
  // Test mail goes only to people of the workspace: start with the person at the keyboard.
  const testTo = h("input", { name: "testTo", type: "email", value: currentSession()?.user?.email || "", "aria-label": "Send a test to" });
  const when = h("input", { name: "scheduleAt", type: "datetime-local", "aria-label": "Send at" });
  const sendBox = c && writable ? h("div", { class: "stack" },
    h("div", {}, h("h3", {}, "Test send"), h("div", { class: "row" }, testTo, h("button", { type: "button", id: "send-test", onclick: once(async () => {
      if (!(await save())) return;
      try {
        const n = (await gql(`mutation T($id: ID!, $to: String!, $c: ID) { sendCampaignTest(id: $id, to: $to, contactId: $c) }`, { id: c.id, to: testTo.value, c: sample?.id || null })).sendCampaignTest;
        toast(`${n} test ${n === 1 ? "email" : "emails"} sent to ${testTo.value}.`);
      } catch (e) {
        toast(e.message, "error");
      }
    }) }, "Send test")), h("div", { class: "small muted" }, "Each variant, rendered for the contact the previews show, with “[Test]” in the subject, to a person of this workspace. Its links do nothing.")),
    h("div", {}, h("h3", {}, "Send"), h("div", { class: "row" },
      h("button", { type: "button", class: "primary", id: "send-now", onclick: once(async () => {
        if (!(await save())) return;
        if (!(await confirm("Send campaign", "The email goes out now to everyone the segment holds who may receive it.", "Send now"))) return;
        try {
          await gql(`mutation S($id: ID!) { sendCampaign(id: $id) { id status } }`, { id: c.id });
          toast("Sending started.");
          navigate(`#/campaigns/${c.id}`);
        } catch (e) {
          toast(e.message, "error");
        }
      }) }, "Send now"),
      h("span", { class: "muted" }, "or"), when,
      h("button", { type: "button", id: "schedule", onclick: once(async () => {
        if (!when.value) return toast("Choose when to send first.", "error");
        if (!(await save())) return;
        try {
          await gql(`mutation S($id: ID!, $at: DateTime) { scheduleCampaign(id: $id, at: $at) { id } }`, { id: c.id, at: new Date(when.value).toISOString() });
          toast(`Scheduled for ${fmtDateTime(new Date(when.value).toISOString())}.`);
          navigate(`#/campaigns/${c.id}`);
        } catch (e) {
          toast(e.message, "error");
        }
      }) }, "Schedule")))) : null;

  mount(form,
    h("div", { class: "grid two" }, field("Name", name), field("Segment", segment, h("span", {}, segmentCount, " ", h("a", { href: "#/segments/new" }, "Build a new segment")))),
    h("div", { class: "grid three" }, field("Sender address", fromEmail), field("Sender name", fromName), field("Topic", topic)),
    h("div", { class: "grid three" }, field("Messages per second", rate), h("div", { class: "field" }, h("label", { for: "ab-on" }, "A/B test"), h("label", { class: "check" }, abOn, " Send the variants to a share first, the winner to the rest"))),
    abBox,
    h("div", { class: "panel-head", style: { marginTop: "8px" } }, h("h3", { style: { margin: 0 } }, "Variants"),
      contactPicker((id, who) => { sample = { id, name: who }; variants.forEach((v) => v.refresh?.()); }, "Preview the variants for")),
    variantsBox,
    writable ? h("div", { class: "row", style: { marginTop: "16px" } }, h("button", { type: "button", class: "primary", id: "save-campaign", onclick: once(save) }, "Save draft"),
      c ? h("button", { type: "button", class: "danger", onclick: async () => {
        if (!(await confirm("Delete draft", `“${c.name}” will be deleted.`, "Delete", "danger solid"))) return;
        try {
          await gql(`mutation D($id: ID!) { deleteCampaign(id: $id) }`, { id: c.id });
          navigate("#/campaigns");
        } catch (e) {
          toast(e.message, "error");
        }
      } }, "Delete draft") : null) : null);
  drawVariants();
  mount(page,
    pageHead(c ? c.name : "New campaign", h("span", {}, h("a", { href: "#/campaigns" }, "← All campaigns"), c ? [" · ", statusBadge(c.status)] : null)),
    h("div", { class: "grid side-main reverse" },
      panel("Campaign", form),
      h("div", { class: "stack" }, panel("Before sending", reachBox), sendBox ? panel("Test and send", sendBox) : null)));
  if (segment.value) sizeOf(segment.value, segmentCount);
  if (!sample) sample = await firstContact().catch(() => null);
  variants.forEach((v) => v.refresh?.());
  if (c) reach(c.id, reachBox);
}

const sizeTickets = latest();
async function sizeOf(segmentId, box) {
  const current = sizeTickets();
  if (!segmentId) return mount(box);
  try {
    const s = (await gql(`query S($id: ID!) { segment(id: $id) { preview(sample: 3) { count sample { id name } } } }`, { id: segmentId })).segment;
    if (!current()) return;
    const names = s.preview.sample.map((c) => c.name).filter(Boolean);
    mount(box, `${s.preview.count.toLocaleString("en-US")} contacts now`, names.length ? `, such as ${names.join(", ")}` : "", ".");
  } catch (e) {
    mount(box, e.message);
  }
}

const reachTickets = latest();
async function reach(id, box) {
  const current = reachTickets();
  mount(box, loading());
  let r;
  try {
    r = (await gql(`query R($id: ID!) { campaign(id: $id) { reach { members willReceive noAddress suppressed noConsent topicOptedOut complete } } }`, { id })).campaign.reach;
  } catch (e) {
    if (current()) mount(box, empty(e.message));
    return;
  }
  if (!current()) return;
  const row = (text, n, tone = "") => h("tr", {}, h("td", {}, text), h("td", { class: `right num ${tone}` }, n.toLocaleString("en-US")));
  mount(box,
    h("div", { class: "stat" }, h("span", { class: "value", id: "will-receive" }, r.willReceive.toLocaleString("en-US")), h("span", { class: "label" }, `of ${r.members.toLocaleString("en-US")} in the segment will receive it${r.complete ? "" : " (first 200,000 counted)"}`)),
    h("table", { class: "compact", id: "skipped", style: { marginTop: "10px" } }, h("tbody", {},
      row("Skipped: no marketing consent", r.noConsent, r.noConsent ? "down" : ""),
      row("Skipped: address suppressed", r.suppressed, r.suppressed ? "down" : ""),
      row("Skipped: no email address", r.noAddress, r.noAddress ? "down" : ""),
      row("Skipped: opted out of the topic", r.topicOptedOut, r.topicOptedOut ? "down" : ""))));
}

function variantCard(v, i, templates, vars, sampleOf, remove) {
  const nameInput = h("input", { name: `variant-${i}-name`, value: v.name, "aria-label": `Variant ${i + 1} name`, oninput: (e) => { v.name = e.target.value; } });
  const weight = h("input", { name: `variant-${i}-weight`, type: "number", min: "1", max: "100", value: v.weight, "aria-label": `Variant ${i + 1} weight`, oninput: (e) => { v.weight = e.target.value; } });
  const prior = v.editors;
  v.editors = {
    subject: codeEditor(`v${i}-subject`, prior ? prior.subject.area.value : v.subject, 1, "Subject"),
    html: codeEditor(`v${i}-html`, prior ? prior.html.area.value : v.html, 8, "HTML"),
    text: codeEditor(`v${i}-text`, prior ? prior.text.area.value : v.text, 5, "Text"),
  };
  let focused = v.editors.html.area;
  Object.values(v.editors).forEach((e) => e.area.addEventListener("focus", () => { focused = e.area; }));
  const from = select(`variant-${i}-template`, [["", "Start from a template…"], ...templates.map((t) => [t.id, t.name])], "");
  from.setAttribute("aria-label", `Variant ${i + 1}: start from a template`);
  from.addEventListener("change", () => {
    const t = templates.find((x) => x.id === from.value);
    if (!t) return;
    v.editors.subject.area.value = t.subject;
    v.editors.html.area.value = t.html;
    v.editors.text.area.value = t.text;
    Object.values(v.editors).forEach((e) => e.area.dispatchEvent(new Event("input")));
  });
  const preview = h("div", { class: "variant-preview" });
  let timer = null;
  const tickets = latest();
  v.refresh = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const current = tickets();
      const who = sampleOf();
      if (!who) return mount(preview, empty("Add a contact to preview for."));
      // Nothing written yet: nothing to preview, and no error to show.
      if (Object.values(v.editors).every((e) => !e.area.value.trim())) return mount(preview, empty("Write the email, or start from a template, to preview it."));
      try {
        const out = (await gql(`query R($input: EmailTemplateInput!, $c: ID!) { previewEmailTemplate(input: $input, contactId: $c) { subject html text } }`,
          { input: { subject: v.editors.subject.area.value, html: v.editors.html.area.value, text: v.editors.text.area.value }, c: who.id })).previewEmailTemplate;
        if (!current()) return;
        Object.values(v.editors).forEach((e) => e.clear());
        mount(preview, h("div", { class: "small muted" }, `Preview for ${who.name}`), renderedView(out));
      } catch (e) {
        if (!current()) return;
        Object.values(v.editors).forEach((ed) => ed.clear());
        const ed = v.editors[e.field];
        if (ed) ed.mark(e.errors?.[0]?.extensions?.line ?? null, String(e.message).replace(/^(subject|html|text): /, ""));
        mount(preview, empty(ed ? "The preview comes back when the variant renders." : e.message));
      }
    }, 500);
  };
  Object.values(v.editors).forEach((e) => e.area.addEventListener("input", v.refresh));
  const chips = variableMenu(vars, () => focused);
  return h("div", { class: "variant", "data-variant": i },
    h("div", { class: "row" }, h("strong", {}, `Variant ${i + 1}`), nameInput, h("span", { class: "small muted" }, "weight"), weight, from, h("span", { class: "spacer" }),
      chips, remove ? h("button", { type: "button", class: "ghost", onclick: remove }, "Remove") : null),
    v.editors.subject.box, h("div", { class: "grid two" }, v.editors.html.box, v.editors.text.box), preview);
}

// ---- Results -------------------------------------------------------------------------

async function results(page, c) {
  const controls = h("div", { class: "toolbar", id: "campaign-controls" });
  const progress = h("div", { id: "campaign-progress" }, loading());
  const variantsBox = h("div", { id: "variant-stats" }, loading());
  const messages = h("div", { id: "campaign-messages" }, loading());
  const failed = h("div", { id: "failed-jobs" });
  const head = h("div", {});
  mount(page, head,
    panel("Progress", progress),
    panel("Variants", variantsBox),
    h("div", { class: "grid two" }, panel("Messages", messages), can("admin") ? panel("Failed jobs", failed) : h("div", {})));
  let last = null;
  let state = "";
  let shownState = "";
  let stop = () => {};
  const draw = async () => {
    let data;
    try {
      data = (await gql(`query C($id: ID!) { campaign(id: $id) { ${CAMPAIGN} stats { ${STATS} } variantStats { ${STATS} } } }`, { id: c.id })).campaign;
    } catch (e) {
      return mount(progress, empty(e.message));
    }
    const now = Date.now();
    const s = data.stats;
    const perSecond = last ? Math.max(0, (s.sent - last.sent) / ((now - last.at) / 1000)) : null;
    last = { sent: s.sent, at: now };
    // The heading and its buttons change only with the status, so focus stays put.
    if (data.status !== state) {
      mount(head, pageHead(data.name, h("span", {}, h("a", { href: "#/campaigns" }, "← All campaigns"), " · ", statusBadge(data.status), data.statusReason ? h("span", { class: "muted" }, ` ${data.statusReason}`) : null), controls));
      drawControls(controls, data, draw);
    }
    const done = s.sent + s.skipped + s.failed + s.bounced + s.unknown;
    mount(progress,
      h("div", { class: "grid three tiles" },
        tile("Recipients", s.recipients), tile("Sent", s.sent, "stat-sent"), tile("Pending", s.pending),
        tile("Failed", s.failed + s.unknown), tile("Skipped", s.skipped), tile("Per second", perSecond === null ? "–" : perSecond.toFixed(1))),
      h("div", { class: "bar", style: { marginTop: "12px" }, role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(s.recipients), "aria-valuenow": String(done) },
        h("span", { style: { width: `${s.recipients ? (100 * done) / s.recipients : 0}%` } })),
      h("div", { class: "small muted", style: { marginTop: "6px" } },
        data.startedAt ? `Started ${fmtDateTime(data.startedAt)}` : data.scheduledAt ? `Scheduled for ${fmtDateTime(data.scheduledAt)}` : "",
        data.finishedAt ? ` · finished ${fmtDateTime(data.finishedAt)}` : ""));
    drawVariants(variantsBox, data);
    if (data.status !== state) {
      state = data.status;
      shownState = messages.querySelector("select[name=state]")?.value || shownState;
      drawMessages(messages, data, shownState);
      if (can("admin")) drawFailed(failed);
    }
    // A sent or cancelled campaign changes only as opens and clicks come in: look less often.
    if (["SENT", "CANCELLED"].includes(data.status) && !slow) {
      slow = true;
      stop();
      stop = every(30000, progress, draw);
    }
  };
  let slow = false;
  await draw();
  // Sending progress arrives as it commits; opens and clicks are looked for now and then.
  // A paced send reports every few hundred milliseconds: one redraw a second at most.
  let pending = null;
  subscribe(`subscription Progress($id: ID!) { campaignProgress(id: $id) { id } }`, { id: c.id }, () => {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      draw();
    }, 1000);
  }, progress);
  if (!slow) stop = every(10000, progress, draw);
}

function tile(text, value, id) {
  return h("div", { class: "stat" }, h("span", { class: "value", id }, typeof value === "number" ? value.toLocaleString("en-US") : value), h("span", { class: "label" }, text));
}

function drawControls(box, c, redraw) {
  if (!can("write")) return mount(box);
  const act = (mutation, text, tone = "") => h("button", { type: "button", class: tone, id: `campaign-${mutation}`, onclick: async () => {
    if (mutation === "cancel" && !(await confirm("Cancel campaign", "What was not sent yet never will be.", "Cancel campaign", "danger solid"))) return;
    try {
      await gql(`mutation M($id: ID!) { ${mutation}Campaign(id: $id) { id } }`, { id: c.id });
      redraw();
    } catch (e) {
      toast(e.message, "error");
    }
  } }, text);
  mount(box,
    ["SENDING", "SCHEDULED"].includes(c.status) ? act("pause", "Pause") : null,
    c.status === "PAUSED" ? act("resume", "Resume", "primary") : null,
    ["SENDING", "SCHEDULED", "PAUSED"].includes(c.status) ? act("cancel", "Cancel", "danger") : null);
}

function drawVariants(box, c) {
  const byId = new Map(c.variants.map((v) => [v.id, v]));
  const rows = c.variantStats.filter((s) => s.variantId);
  const held = c.variantStats.find((s) => !s.variantId);
  const max = Math.max(0.0001, ...rows.map((s) => Math.max(s.openRate, s.clickRate)));
  mount(box,
    c.abTest ? h("p", { class: "small muted" }, `A/B test: ${Math.round(c.abTest.testShare * 100)}% first, the winner by ${label(c.abTest.metric).toLowerCase()}s after ${c.abTest.waitMinutes} minutes.`,
      c.winnerVariantId ? [" ", badge2(`Winner: ${byId.get(c.winnerVariantId)?.name || "?"}`)] : held ? ` ${held.recipients.toLocaleString("en-US")} held for the winner.` : "") : null,
    h("div", { class: "variant-chart", "aria-hidden": "true" }, rows.map((s) => h("div", { class: "vbar-group" },
      h("div", { class: "vbars" },
        h("div", { class: "vbar open", style: { height: `${(100 * s.openRate) / max}%` }, title: `Opens ${fmtPercent(s.openRate, 1)}` }),
        h("div", { class: "vbar click", style: { height: `${(100 * s.clickRate) / max}%` }, title: `Clicks ${fmtPercent(s.clickRate, 1)}` })),
      h("div", { class: "small" }, byId.get(s.variantId)?.name || "?")))),
    h("div", { class: "legend" }, h("span", {}, h("i", { style: { background: "var(--accent)" } }), "Open rate"), h("span", {}, h("i", { style: { background: "#f59f00" } }), "Click rate")),
    h("div", { class: "table-wrap" }, h("table", { id: "variant-table" },
      h("thead", {}, h("tr", {}, ["Variant", "Sent", "Delivered", "Unique opens", "Clicks", "Unsubscribes", "Bounces", "Open rate", "Click rate"].map((t, i) => h("th", { class: i ? "right" : "" }, t)))),
      h("tbody", {}, rows.map((s) => h("tr", { "data-variant": s.variantId },
        h("td", {}, byId.get(s.variantId)?.name || "?", c.winnerVariantId === s.variantId ? [" ", badge2("winner")] : null),
        ...[s.sent, s.sent - s.bounced, s.uniqueOpens, s.uniqueClicks, s.unsubscribes, s.bounced].map((n) => h("td", { class: "right num" }, n.toLocaleString("en-US"))),
        h("td", { class: "right num" }, fmtPercent(s.openRate, 1)),
        h("td", { class: "right num" }, fmtPercent(s.clickRate, 1))))))));
}

function badge2(text) {
  return h("span", { class: "badge good" }, text);
}

async function drawMessages(box, c, state) {
  const filter = select("state", [["", "Every state"], ...["QUEUED", "HELD", "SENDING", "SENT", "SKIPPED", "FAILED", "BOUNCED", "UNKNOWN", "CANCELLED"].map((s) => [s, label(s)])], state);
  filter.setAttribute("aria-label", "Messages in state");
  filter.addEventListener("change", () => drawMessages(box, c, filter.value));
  let list;
  try {
    list = (await gql(`query M($id: ID!, $state: MessageState) { campaign(id: $id) { messages(state: $state, first: 50) { id state reason sentAt opens clicks variantId contact { id name email } } } }`, { id: c.id, state: state || null })).campaign.messages;
  } catch (e) {
    return mount(box, empty(e.message));
  }
  const names = new Map(c.variants.map((v) => [v.id, v.name]));
  mount(box, h("div", { class: "row", style: { marginBottom: "8px" } }, filter),
    list.length ? h("div", { class: "table-wrap" }, h("table", { id: "messages-table", class: "compact" },
      h("thead", {}, h("tr", {}, h("th", {}, "Contact"), h("th", {}, "Variant"), h("th", {}, "State"), h("th", { class: "right" }, "Opens"), h("th", { class: "right" }, "Clicks"))),
      h("tbody", {}, list.map((m) => h("tr", {},
        h("td", {}, m.contact ? h("a", { href: `#/contacts/${m.contact.id}` }, m.contact.name || m.contact.email) : "(erased)"),
        h("td", {}, names.get(m.variantId) || "–"),
        h("td", {}, statusBadge(m.state), m.reason ? h("div", { class: "small muted" }, m.reason) : null),
        h("td", { class: "right num" }, m.opens), h("td", { class: "right num" }, m.clicks)))))) : empty("No message in this state."));
}

async function drawFailed(box) {
  let jobs;
  try {
    jobs = (await gql(`{ failedJobs(first: 20) { id job attempts error failedAt } }`)).failedJobs;
  } catch (e) {
    return mount(box, empty(e.message));
  }
  if (!jobs.length) return mount(box, empty("No failed job. Jobs that use up their attempts appear here."));
  mount(box, h("ul", { class: "plain" }, jobs.map((j) => h("li", { class: "action" },
    h("div", { class: "row" }, h("strong", {}, j.job?.kind || j.job?.type || "job"), h("span", { class: "muted small" }, `${j.attempts} attempts · ${fmtDateTime(j.failedAt)}`), h("span", { class: "spacer" }),
      h("button", { type: "button", onclick: async () => {
        try {
          await gql(`mutation R($id: ID!) { retryJob(id: $id) }`, { id: j.id });
          toast("Job queued again.");
          drawFailed(box);
        } catch (e) {
          toast(e.message, "error");
        }
      } }, "Retry")),
    j.error ? h("div", { class: "small muted" }, j.error) : null))));
}
