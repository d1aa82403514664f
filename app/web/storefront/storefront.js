// The shoprec demo storefront: plain JavaScript over the public API, no build step.
// Every number on the page comes from an API answer; feedback buttons send real events and
// then ask for the recommendations again, marking what the feedback changed.
"use strict";

const $ = (selector) => document.querySelector(selector);
const VERBS = { view: "viewed", click: "clicked", add_to_cart: "added to cart", purchase: "bought", rating: "rated" };
const HINTS = {
  401: "enter an API key in the header field",
  403: "this API key's role is too low for that",
  404: "check the id",
  429: "too many requests: wait a moment",
  503: "the service or its Redis feedback store is unavailable: try again in a moment",
};

const state = {
  shopper: null,
  shown: [],          // the recommendations on screen, best first
  titles: new Map(),  // item id -> title, from every answer seen
  done: new Map(),    // item id -> strongest event this page sent for it
  openItem: null,
  similarBy: "collaborative",
  refreshes: 0,
};

// -- talking to the API --------------------------------------------------------------------
async function api(method, path, body, { quiet = false } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = $("#api-key").value.trim();
  if (key) headers["X-API-Key"] = key;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    if (!quiet) showMessage(`The shoprec API did not answer (${err.message}).`);
    return null;
  }
  let payload = null;
  try { payload = await response.json(); } catch { /* no JSON body */ }
  if (!response.ok) {
    if (!quiet) showMessage(describeError(response.status, payload));
    return null;
  }
  return payload ?? {};
}

function describeError(status, payload) {
  const error = payload && payload.error;
  // A 422 names the fields in its message and says what is wrong with each in its details.
  const details = error && Array.isArray(error.details) ? error.details.map((d) => d.msg).filter(Boolean) : [];
  const message = error ? [error.message, ...details].join(": ") : `HTTP ${status}`;
  const hint = HINTS[status] ? ` — ${HINTS[status]}` : "";
  return `${message}${hint} (${status}${error ? ` ${error.code}` : ""})`;
}

// -- messages ------------------------------------------------------------------------------
function showMessage(text, kind = "error") {
  const box = document.createElement("div");
  box.className = `message ${kind}`;
  const words = document.createElement("span");
  words.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = "×";
  close.setAttribute("aria-label", "dismiss");
  close.addEventListener("click", () => box.remove());
  box.append(words, close);
  $("#messages").append(box);
}

function clearMessages() { $("#messages").replaceChildren(); }

// -- recommendations -----------------------------------------------------------------------
function requestBody() {
  const body = { user_id: state.shopper, k: Number($("#k").value) || 12, explain: true };
  const filters = {};
  if ($("#category").value) filters.category = [$("#category").value];
  if ($("#min-price").value !== "") filters.min_price = Number($("#min-price").value);
  if ($("#max-price").value !== "") filters.max_price = Number($("#max-price").value);
  if (Object.keys(filters).length) body.filters = filters;
  const diversity = Number($("#diversity").value), exploration = Number($("#exploration").value);
  if (diversity > 0) body.diversity = diversity;
  if (exploration > 0) body.exploration = exploration;
  return body;  // no exclusion flag: the API's default policy applies
}

async function refresh(cause = null) {
  const answer = await api("POST", "/v1/recommendations", requestBody());
  if (!answer) return;
  answer.items.forEach((item) => state.titles.set(item.item_id, item.title));
  $("#model-version").textContent = answer.model_version;
  $("#strategy").textContent = answer.strategy;
  $("#live").textContent = answer.live_feedback ? "on" : "off";
  if (!answer.live_feedback) {
    showMessage("Live feedback is off: Redis is not answering, so these recommendations come from the trained model alone.", "warning");
  }
  await learnTitles(answer.items.flatMap((item) => item.because || []));
  const changes = cause ? compare(state.shown, answer.items) : null;
  state.shown = answer.items;
  renderGrid(answer.items, changes);
  $("#changes").textContent = cause ? summary(cause, changes) : `${answer.items.length} items, strategy ${answer.strategy}.`;
  $("#grid").dataset.refresh = String(++state.refreshes);
}

// Titles of the history items named in "because ...", fetched once each.
async function learnTitles(ids) {
  const missing = [...new Set(ids)].filter((id) => !state.titles.has(id));
  const items = await Promise.all(missing.map((id) => api("GET", `/v1/items/${encodeURIComponent(id)}`, undefined, { quiet: true })));
  items.forEach((item, i) => state.titles.set(missing[i], item ? item.title : null));
}

// Where each item of the new list was before: new, moved up, moved down, same; and what left.
function compare(before, after) {
  const rank = new Map(before.map((item, i) => [item.item_id, i]));
  const now = new Set(after.map((item) => item.item_id));
  const moves = new Map();
  after.forEach((item, i) => {
    if (!rank.has(item.item_id)) moves.set(item.item_id, { kind: "new", text: "new" });
    else if (rank.get(item.item_id) > i) moves.set(item.item_id, { kind: "up", text: `▲ ${rank.get(item.item_id) - i}` });
    else if (rank.get(item.item_id) < i) moves.set(item.item_id, { kind: "down", text: `▼ ${i - rank.get(item.item_id)}` });
  });
  return { moves, left: before.filter((item) => !now.has(item.item_id)) };
}

function summary(cause, changes) {
  const count = (kind) => [...changes.moves.values()].filter((m) => m.kind === kind).length;
  const left = changes.left.map((item) => item.title || item.item_id);
  const parts = [`${count("new")} new`, `${count("up")} moved up`, `${count("down")} moved down`];
  return `After you ${cause}: ${parts.join(", ")}` + (left.length ? `; left the list: ${left.join(", ")}.` : ".");
}

// -- rendering -----------------------------------------------------------------------------
function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function card(item, rank, move) {
  const li = element("li", "card");
  li.dataset.itemId = item.item_id;
  const head = element("div", "rank", rank === null ? "" : `#${rank + 1}`);
  if (move) {
    head.append(element("span", `move ${move.kind}`, move.text));
    if (move.kind === "new") li.classList.add("new");
  }
  const title = element("h3");
  const link = element("a", null, item.title || item.item_id);
  link.href = "#";
  link.addEventListener("click", (event) => { event.preventDefault(); openItem(item.item_id); });
  title.append(link);
  if (item.explored) {
    head.append(element("span", "explored", "new to the shop"));
    li.classList.add("explored");
  }
  li.append(head, title, element("p", "meta", [item.category, item.brand].filter(Boolean).join(" · ")));
  if (item.price !== null && item.price !== undefined) li.append(element("p", "price", item.price.toFixed(2)));
  if (item.because && item.because.length) li.append(element("p", "because", because(item)));
  li.append(actions(item.item_id));
  return li;
}

// "because you bought A; B, C in your history": what this page sent, then the rest.
function because(item) {
  const ids = item.because;
  const title = (id) => state.titles.get(id) || id;
  // Shops reuse titles: name the id when another item in sight has the same one.
  const twins = (id) => [item.item_id, ...ids].some((other) => other !== id && title(other) === title(id));
  const name = (id) => `“${title(id)}”${twins(id) ? ` (${id})` : ""}`;
  const sent = ids.filter((id) => state.done.has(id)).map((id) => `you ${VERBS[state.done.get(id)]} ${name(id)}`);
  const earlier = ids.filter((id) => !state.done.has(id)).map(name);
  return `because ${[...sent, ...(earlier.length ? [`${earlier.join(", ")} in your history`] : [])].join("; ")}`;
}

function actions(itemId) {
  const box = element("div", "actions");
  for (const [event, label] of [["add_to_cart", "Add to cart"], ["purchase", "Buy"]]) {
    const button = element("button", null, label);
    button.type = "button";
    button.dataset.event = event;
    button.addEventListener("click", () => feedback(itemId, event));
    box.append(button);
  }
  const rating = element("select", "rating");
  rating.setAttribute("aria-label", "rate");
  rating.append(new Option("Rate…", ""), ...[1, 2, 3, 4, 5].map((v) => new Option(`${v} ★`, String(v))));
  rating.addEventListener("change", () => { if (rating.value) feedback(itemId, "rating", Number(rating.value)); });
  box.append(rating);
  return box;
}

function renderGrid(items, changes) {
  $("#grid").replaceChildren(...items.map((item, i) => card(item, i, changes && changes.moves.get(item.item_id))));
}

// -- feedback ------------------------------------------------------------------------------
const STRENGTH = ["view", "click", "rating", "add_to_cart", "purchase"];

async function feedback(itemId, event, value) {
  clearMessages();
  const body = { user_id: state.shopper, item_id: itemId, event };
  if (value !== undefined) body.value = value;
  const answer = await api("POST", "/v1/feedback", body);
  if (!answer) return false;
  if (STRENGTH.indexOf(event) >= STRENGTH.indexOf(state.done.get(itemId))) state.done.set(itemId, event);
  // Both answer shapes: {"duplicate": bool} and {"duplicates": n}.
  const duplicate = answer.duplicate === true || answer.duplicates > 0;
  const name = state.titles.get(itemId) || itemId;
  const what = `${VERBS[event]} “${name}”${value !== undefined ? ` ${value} ★` : ""}`;
  $("#activity").prepend(element("li", null, `${what}${duplicate ? " (already recorded)" : ""}`));
  await refresh(what);
  return true;
}

// -- item page -----------------------------------------------------------------------------
async function openItem(itemId) {
  clearMessages();
  const item = await api("GET", `/v1/items/${encodeURIComponent(itemId)}`);
  if (!item) return;
  state.openItem = item.item_id;
  state.titles.set(item.item_id, item.title);
  $("#item-page").hidden = false;
  $("#item-title").textContent = item.title || item.item_id;
  $("#item-meta").textContent = [item.item_id, item.category, item.brand].filter(Boolean).join(" · ");
  $("#item-price").textContent = item.price === null ? "" : item.price.toFixed(2);
  $("#item-attributes").textContent = item.attributes.length ? item.attributes.join(", ") : "";
  $("#item-actions").replaceChildren(...actions(item.item_id).children);
  await similar();
  await feedback(item.item_id, "view");  // opening an item page is a view, as in a shop
}

async function similar() {
  const itemId = state.openItem;
  document.querySelectorAll("#similar-by button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.by === state.similarBy)));
  const answer = await api("GET", `/v1/items/${encodeURIComponent(itemId)}/similar?k=8&by=${state.similarBy}`);
  if (!answer || itemId !== state.openItem) return;
  answer.items.forEach((item) => state.titles.set(item.item_id, item.title));
  $("#similar").replaceChildren(...answer.items.map((item) => card(item, null, null)));
  $("#similar").dataset.by = answer.by;
}

// -- shoppers ------------------------------------------------------------------------------
function newVisitor() {
  const id = `visitor-${Math.random().toString(16).slice(2, 10)}`;
  const option = new Option(`Anonymous visitor ${id}`, id);
  $("#shopper").prepend(option);
  $("#shopper").value = id;
  return choose(id, "a new visitor: no history yet, so popular items until the first click");
}

async function choose(userId, info) {
  clearMessages();
  state.shopper = userId;
  state.shown = [];
  state.done.clear();
  $("#shopper-info").textContent = info;
  $("#activity").replaceChildren();
  $("#item-page").hidden = true;
  await refresh();
}

async function start() {
  const shop = await api("GET", "/v1/demo/shop");
  const known = document.createElement("optgroup");
  known.label = "Known shoppers";
  const infos = new Map();
  for (const shopper of shop ? shop.shoppers : []) {
    const tastes = shopper.categories.length ? `, mostly ${shopper.categories.join(", ")}` : "";
    infos.set(shopper.user_id, `${shopper.interactions} items in their history${tastes}`);
    known.append(new Option(`${shopper.user_id} (${shopper.interactions} items${tastes})`, shopper.user_id));
  }
  $("#shopper").append(known);
  for (const category of shop ? shop.categories : []) $("#category").append(new Option(category, category));
  $("#shopper").addEventListener("change", () => {
    const id = $("#shopper").value;
    choose(id, infos.get(id) || "an anonymous visitor");
  });
  $("#new-visitor").addEventListener("click", newVisitor);
  for (const [input, shown] of [["#diversity", (v) => v], ["#exploration", (v) => `${Math.round(v * 100)}%`]]) {
    $(input).addEventListener("input", () => { $(`${input}-value`).textContent = shown(Number($(input).value)); });
  }
  $("#filters").addEventListener("submit", (event) => { event.preventDefault(); clearMessages(); refresh(); });
  $("#open-item").addEventListener("submit", (event) => { event.preventDefault(); openItem($("#item-id").value.trim()); });
  $("#close-item").addEventListener("click", () => { $("#item-page").hidden = true; state.openItem = null; });
  document.querySelectorAll("#similar-by button").forEach((button) => button.addEventListener("click", () => {
    state.similarBy = button.dataset.by;
    similar();
  }));
  await newVisitor();
}

start();
