/* givtcp-async dashboard: live snapshots over server-sent events, controls over the REST API.
   No libraries, no external assets. Every URL is relative, so the page also works behind a
   reverse proxy under a sub-path. */
(function () {
  "use strict";

  var state = { prefix: "", source: null, dirty: {}, inverters: [], family: "", serial: "",
    stale: {}, missing: {} };

  function $(id) { return document.getElementById(id); }

  function url(path) {
    return state.prefix ? state.prefix.replace(/^\/+/, "") + "/" + path : path;
  }

  function lookup(tree, path) {
    var node = tree;
    var parts = path.split("/");
    for (var i = 0; i < parts.length; i++) {
      if (node === null || typeof node !== "object" || !(parts[i] in node)) { return undefined; }
      node = node[parts[i]];
    }
    return node;
  }

  function shown(value) {
    if (value === undefined || value === null) { return "\u2013"; }
    return String(value);
  }

  function num(value) { return typeof value === "number" ? value : 0; }

  function hhmm(value) { return typeof value === "string" ? value.slice(0, 5) : ""; }

  // --- rendering ----------------------------------------------------------------------------

  function toSet(list) {
    var out = {};
    (list || []).forEach(function (path) { out[path] = true; });
    return out;
  }

  // "@details/X": the inverter's details group, keyed by its serial in GivTCP 3's layout and
  // "Invertor_Details" in GivTCP 2's.
  function resolve(tree, field) {
    if (field.indexOf("@details/") !== 0) { return field; }
    var group = tree && typeof tree.Invertor_Details === "object" ? "Invertor_Details" : state.serial;
    return group + field.slice(8);
  }

  // Each shown value gets data-state: ok, stale (republished as its last good value: greyed),
  // missing (the model has it, but there is no valid reading now: a dash, marked) or absent (the
  // model has no such value: its row is hidden).
  function fieldState(path, value) {
    if (value !== undefined && value !== null) { return state.stale[path] ? "stale" : "ok"; }
    return state.missing[path] ? "missing" : "absent";
  }

  var TITLES = {
    stale: "last good value: the latest poll did not confirm it",
    missing: "no valid reading now"
  };

  function renderFields(tree) {
    var els = document.querySelectorAll("[data-field]");
    for (var i = 0; i < els.length; i++) {
      var path = resolve(tree, els[i].getAttribute("data-field"));
      var value = lookup(tree, path);
      var st = fieldState(path, value);
      els[i].setAttribute("data-path", path);
      els[i].setAttribute("data-state", st);
      hide(els[i], st === "absent");  // not a value of this model
      els[i].textContent = shown(value);
      els[i].setAttribute("data-value", value === undefined || value === null ? "" : String(value));
      if (TITLES[st]) { els[i].setAttribute("title", TITLES[st]); } else { els[i].removeAttribute("title"); }
    }
    // Alternatives (one family's name for a value or another's): the first the model has.
    var alts = document.querySelectorAll(".alt");
    for (var a = 0; a < alts.length; a++) {
      var inner = alts[a].querySelectorAll("[data-field]");
      var chosen = -1;
      for (var k = 0; k < inner.length; k++) {
        if (chosen < 0 && inner[k].getAttribute("data-state") !== "absent") { chosen = k; }
      }
      for (var m = 0; m < inner.length; m++) { if (m !== chosen) { hide(inner[m], true); } }
    }
    var rows = document.querySelectorAll("[data-row]");
    for (var r = 0; r < rows.length; r++) {
      var fields = rows[r].querySelectorAll("[data-field]");
      var present = false;
      for (var f = 0; f < fields.length; f++) {
        if (fields[f].getAttribute("data-state") !== "absent") { present = true; }
      }
      var marker = rows[r].getAttribute("data-present");
      if (present && marker) {
        var flag = lookup(tree, marker);
        present = flag !== undefined && flag !== null && flag !== "" && flag !== "Absent" &&
          flag !== "Disabled";
      }
      hide(rows[r], !present);
    }
    var cards = document.querySelectorAll("section[data-auto]");
    for (var d = 0; d < cards.length; d++) {
      hide(cards[d], cards[d].querySelectorAll("[data-row]:not([hidden])").length === 0);
    }
    var only = document.querySelectorAll("[data-families]");
    for (var o = 0; o < only.length; o++) {
      var spec = only[o].getAttribute("data-families");
      var negate = spec.charAt(0) === "!";
      var listed = (negate ? spec.slice(1) : spec).split(" ").indexOf(state.family) >= 0;
      hide(only[o], negate ? listed : !listed);
    }
  }

  // The hidden attribute, on HTML and SVG elements alike (SVG elements have no .hidden).
  function hide(el, hidden) {
    if (hidden) { el.setAttribute("hidden", ""); } else { el.removeAttribute("hidden"); }
  }

  function renderQuality() {
    var badge = $("quality");
    var stale = Object.keys(state.stale).length;
    var missing = Object.keys(state.missing).length;
    badge.hidden = stale + missing === 0;
    badge.setAttribute("data-stale", String(stale));
    badge.setAttribute("data-missing", String(missing));
    var parts = [];
    if (stale) { parts.push(stale + " stale"); }
    if (missing) { parts.push(missing + " without a valid reading"); }
    badge.textContent = parts.join(", ");
    badge.title = "greyed: the last good value; a red dash: no valid reading now\n" +
      Object.keys(state.stale).concat(Object.keys(state.missing)).slice(0, 30).join("\n");
  }

  function setLink(id, forward, backward) {
    var path = $(id);
    var on = num(forward) > 0 || num(backward) > 0;
    path.classList.toggle("active", on);
    path.classList.toggle("rev", num(forward) <= 0 && num(backward) > 0);
  }

  function renderFlows(tree) {
    var f = lookup(tree, "Power/Flows") || {};
    setLink("path-solar-house", f.Solar_to_House, 0);
    setLink("path-solar-grid", f.Solar_to_Grid, 0);
    setLink("path-solar-battery", f.Solar_to_Battery, 0);
    setLink("path-grid-house", f.Grid_to_House, 0);
    setLink("path-battery-house", f.Battery_to_House, 0);
    setLink("path-battery-grid", f.Battery_to_Grid, f.Grid_to_Battery);
    Object.keys(f).forEach(function (name) {
      var label = $("flow-" + name);
      if (label) { label.classList.toggle("idle", num(f[name]) <= 0); }
    });
    var soc = lookup(tree, "Power/Power/SOC");
    $("soc-fill").style.width = (typeof soc === "number" ? Math.max(0, Math.min(100, soc)) : 0) + "%";
  }

  function renderSlots(tree) {
    var slots = lookup(tree, "Timeslots") || {};
    var body = $("slots").tBodies[0];
    body.textContent = "";
    for (var i = 1; i <= 10; i++) {
      var cs = slots["Charge_start_time_slot_" + i], ce = slots["Charge_end_time_slot_" + i];
      var ds = slots["Discharge_start_time_slot_" + i], de = slots["Discharge_end_time_slot_" + i];
      if (cs === undefined && ds === undefined) { continue; }
      var chargeSet = cs !== undefined && cs !== ce;
      var dischargeSet = ds !== undefined && ds !== de;
      if (i > 2 && !chargeSet && !dischargeSet) { continue; }
      var row = body.insertRow();
      row.className = chargeSet || dischargeSet ? "" : "unset";
      row.insertCell().textContent = String(i);
      var c = row.insertCell();
      c.setAttribute("data-slot", "charge-" + i);
      c.textContent = cs === undefined ? "" : hhmm(cs) + "\u2013" + hhmm(ce);
      var d = row.insertCell();
      d.setAttribute("data-slot", "discharge-" + i);
      d.textContent = ds === undefined ? "" : hhmm(ds) + "\u2013" + hhmm(de);
    }
  }

  function prefill(id, value) {
    var el = $(id);
    if (!el || value === undefined || value === null) { return; }
    if (state.dirty[id] || document.activeElement === el) { return; }
    el.value = String(value);
  }

  function renderControls(tree) {
    prefill("charge-target", lookup(tree, "Control/Target_SOC"));
    prefill("reserve", lookup(tree, "Control/Battery_Power_Reserve"));
    prefill("slot1-start", hhmm(lookup(tree, "Timeslots/Charge_start_time_slot_1")));
    prefill("slot1-finish", hhmm(lookup(tree, "Timeslots/Charge_end_time_slot_1")));
    var mode = lookup(tree, "Control/Mode");
    var select = $("mode");
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === mode) { prefill("mode", mode); }
    }
  }

  function render(tree, takenAt) {
    renderFields(tree);
    renderQuality();
    renderFlows(tree);
    renderSlots(tree);
    renderControls(tree);
    if (takenAt) {
      $("updated").textContent = "updated " + new Date(takenAt).toLocaleTimeString();
      document.body.setAttribute("data-taken-at", takenAt);
    }
  }

  function renderHealth(h) {
    var badge = $("link");
    if (!h) { return; }
    var age = h.last_good_poll_age_seconds;
    badge.className = "badge " + (h.online ? "badge-ok" : "badge-bad");
    badge.setAttribute("data-state", h.online ? "online" : "offline");
    badge.textContent = h.online ? "online" : (age === null ? "offline" : "offline for " +
      Math.round(age) + " s");
  }

  // --- live data ----------------------------------------------------------------------------

  function connect() {
    if (state.source) { state.source.close(); }
    var source = new EventSource(url("events"));
    state.source = source;
    source.addEventListener("snapshot", function (ev) {
      var data = JSON.parse(ev.data);
      state.family = data.family || "";
      state.serial = data.serial || "";
      state.stale = toSet(data.stale);
      state.missing = toSet(data.missing);
      document.body.setAttribute("data-family", state.family);
      render(data.runAll, data.taken_at);
      renderHealth(data.health);
    });
    source.addEventListener("health", function (ev) { renderHealth(JSON.parse(ev.data)); });
    source.onerror = function () {
      var badge = $("link");
      badge.className = "badge badge-wait";
      badge.setAttribute("data-state", "reconnecting");
      badge.textContent = "reconnecting\u2026";
    };
  }

  function loadFunctions() {
    return fetch(url("functions")).then(function (r) { return r.json(); }).then(function (body) {
      var available = {};
      (body.functions || []).forEach(function (fn) { available[fn.name] = fn.available !== false; });
      var ctls = document.querySelectorAll(".ctl[data-requires]");
      for (var i = 0; i < ctls.length; i++) {
        var name = ctls[i].getAttribute("data-requires");
        ctls[i].hidden = name in available && !available[name];
      }
    }).catch(function () { /* the controls stay visible; results will say what fails */ });
  }

  function loadInverters() {
    return fetch("inverters").then(function (r) { return r.json(); }).then(function (body) {
      state.inverters = body.inverters || [];
      var select = $("inverter");
      select.textContent = "";
      state.inverters.forEach(function (inv, i) {
        var opt = document.createElement("option");
        opt.value = String(i);
        opt.textContent = (inv.serial || inv.name) + (inv.model ? " (" + inv.model + ")" : "");
        select.appendChild(opt);
      });
      select.hidden = state.inverters.length < 2;
      choose(0);
    });
  }

  function choose(index) {
    var inv = state.inverters[index];
    state.prefix = inv ? inv.prefix : "";
    $("model").textContent = inv && inv.model ? inv.model : "";
    state.dirty = {};
    connect();
    loadFunctions();
  }

  // --- controls -----------------------------------------------------------------------------

  function payloadFor(button) {
    var fixed = button.getAttribute("data-value");
    switch (button.id) {
      case "charge-target-set": return { chargeToPercent: $("charge-target").value };
      case "reserve-set": return { reservePercent: $("reserve").value };
      case "eco-enable": case "eco-disable": return { state: fixed };
      case "slot1-set": return { start: $("slot1-start").value, finish: $("slot1-finish").value };
      case "mode-set": return { mode: $("mode").value };
      case "force-charge-start": return { duration: $("force-charge-minutes").value };
      case "force-export-start": return { duration: $("force-export-minutes").value };
      default: return fixed === null ? {} : { duration: fixed };
    }
  }

  function addResult(fn, http, body) {
    var li = document.createElement("li");
    li.className = "result";
    li.setAttribute("data-function", body.function || fn);
    li.setAttribute("data-status", body.status || "error");
    li.setAttribute("data-http", String(http));
    var head = document.createElement("div");
    head.className = "head";
    head.textContent = new Date().toLocaleTimeString() + "  " + (body.function || fn) + ": " +
      (body.status || body.error || "error") + " (HTTP " + http + ")";
    var msg = document.createElement("div");
    msg.className = "message";
    msg.textContent = body.message || "";
    li.appendChild(head);
    li.appendChild(msg);
    var lines = [];
    (body.registers || []).forEach(function (r) {
      lines.push("HR" + r.register + " " + (r.old === null ? "?" : r.old) + " \u2192 " + r.new +
        (r.written ? " written" : "") + (r.verified ? ", verified" : "") +
        (r.note ? " (" + r.note + ")" : ""));
    });
    (body.errors || []).forEach(function (e) {
      lines.push(e.field + " = " + JSON.stringify(e.value) + ": allowed " + e.allowed);
    });
    if (lines.length) {
      var regs = document.createElement("div");
      regs.className = "regs";
      regs.textContent = lines.join("\n");
      regs.style.whiteSpace = "pre-wrap";
      li.appendChild(regs);
    }
    var list = $("results");
    list.insertBefore(li, list.firstChild);
  }

  function send(button) {
    var fn = button.getAttribute("data-fn");
    var headers = { "Content-Type": "application/json" };
    var token = $("token").value.trim();
    if (token) { headers.Authorization = "Bearer " + token; }
    button.disabled = true;
    fetch(url(fn), { method: "POST", headers: headers, body: JSON.stringify(payloadFor(button)) })
      .then(function (r) {
        return r.json().then(function (body) { return { http: r.status, body: body }; },
          function () { return { http: r.status, body: { status: "error", message: r.statusText } }; });
      }, function (err) { return { http: 0, body: { status: "error", message: String(err) } }; })
      .then(function (res) {
        addResult(fn, res.http, res.body);
        state.dirty = {};
        button.disabled = false;
      });
  }

  function init() {
    var inputs = document.querySelectorAll("#controls input, #controls select");
    for (var i = 0; i < inputs.length; i++) {
      inputs[i].addEventListener("input", function (ev) { state.dirty[ev.target.id] = true; });
    }
    var buttons = document.querySelectorAll("#controls button[data-fn]");
    for (var j = 0; j < buttons.length; j++) {
      buttons[j].addEventListener("click", function (ev) { send(ev.currentTarget); });
    }
    var token = $("token");
    token.value = sessionStorage.getItem("givtcp-token") || "";
    token.addEventListener("change", function () { sessionStorage.setItem("givtcp-token", token.value); });
    $("inverter").addEventListener("change", function (ev) { choose(Number(ev.target.value)); });
    loadInverters().catch(function () { choose(0); });
  }

  init();
}());
