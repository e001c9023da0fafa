// wagate's self-contained API docs: renders /api-docs/openapi.json and lets
// the reader try each operation. No external assets.
(function () {
  "use strict";
  var spec;
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    (kids || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function resolve(s, depth) {
    if (!s || depth > 6) return s;
    if (s.$ref) return resolve(spec.components.schemas[s.$ref.split("/").pop()], depth + 1);
    return s;
  }
  function example(s, depth) {
    s = resolve(s, depth || 0);
    if (!s || (depth || 0) > 6) return null;
    if (s.example !== undefined) return s.example;
    if (s.examples && s.examples.length) return s.examples[0];
    if (s.oneOf) return example(s.oneOf[0], (depth || 0) + 1);
    if (s.allOf) { var o = {}; s.allOf.forEach(function (x) { Object.assign(o, example(x, (depth || 0) + 1)); }); return o; }
    var t = Array.isArray(s.type) ? s.type.filter(function (x) { return x !== "null"; })[0] : s.type;
    if (t === "object" || s.properties) {
      var out = {};
      Object.keys(s.properties || {}).forEach(function (k) { out[k] = example(s.properties[k], (depth || 0) + 1); });
      return out;
    }
    if (t === "array") return [example(s.items, (depth || 0) + 1)];
    if (t === "integer" || t === "number") return 0;
    if (t === "boolean") return true;
    if (s.format === "date-time") return "2026-01-15T10:30:00.000Z";
    return s.enum ? s.enum[0] : "string";
  }
  function operation(path, method, op) {
    var params = op.parameters || [];
    var inputs = {};
    var body = el("div", { class: "body" });
    if (op.description) body.appendChild(el("p", { text: op.description }));
    params.forEach(function (p) {
      var i = el("input", { class: "p", placeholder: p.in + (p.required ? " (required)" : "") });
      inputs[p.name] = { input: i, where: p.in };
      body.appendChild(el("div", {}, [el("code", { text: p.name + " " }), i, el("span", { class: "sum", text: p.description || "" })]));
    });
    var ta = null;
    var rb = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
    if (rb) {
      ta = el("textarea");
      ta.value = JSON.stringify(example(rb.schema), null, 2);
      body.appendChild(el("div", {}, [el("div", { text: "JSON body" }), ta]));
    }
    var out = el("pre", { text: "" });
    var btn = el("button", { text: "Send" });
    btn.addEventListener("click", function () {
      var url = path, q = [];
      Object.keys(inputs).forEach(function (n) {
        var v = inputs[n].input.value;
        if (!v) return;
        if (inputs[n].where === "path") url = url.replace("{" + n + "}", encodeURIComponent(v));
        else if (inputs[n].where === "query") q.push(encodeURIComponent(n) + "=" + encodeURIComponent(v));
      });
      if (q.length) url += "?" + q.join("&");
      var headers = {};
      var tok = document.getElementById("token").value.trim();
      if (tok) headers["Authorization"] = "Bearer " + tok;
      var init = { method: method.toUpperCase(), headers: headers };
      if (ta && ta.value.trim()) { headers["Content-Type"] = "application/json"; init.body = ta.value; }
      out.textContent = "…";
      fetch(url, init).then(function (r) {
        return r.text().then(function (t) {
          try { t = JSON.stringify(JSON.parse(t), null, 2); } catch (e) { /* keep text */ }
          out.textContent = r.status + " " + r.statusText + "\n" + t;
        });
      }).catch(function (e) { out.textContent = String(e); });
    });
    body.appendChild(btn);
    var codes = Object.keys(op.responses || {}).map(function (c) { return c + " " + (op.responses[c].description || ""); });
    body.appendChild(el("p", { text: "Responses: " + codes.join(" · ") }));
    body.appendChild(out);
    var summary = el("summary", {}, [el("span", { class: "m " + method.toUpperCase(), text: method.toUpperCase() }),
      document.createTextNode(path), el("span", { class: "sum", text: op.summary || "" })]);
    return el("details", {}, [summary, body]);
  }
  fetch("/api-docs/openapi.json").then(function (r) { return r.json(); }).then(function (s) {
    spec = s;
    document.getElementById("info").textContent = s.info.title + " " + s.info.version + " — OpenAPI " + s.openapi;
    var groups = {};
    Object.keys(s.paths).forEach(function (p) {
      Object.keys(s.paths[p]).forEach(function (m) {
        var op = s.paths[p][m];
        if (typeof op !== "object" || !op.responses) return;
        var tag = (op.tags && op.tags[0]) || "other";
        (groups[tag] = groups[tag] || []).push(operation(p, m, op));
      });
    });
    var main = document.getElementById("ops");
    Object.keys(groups).forEach(function (g) {
      main.appendChild(el("h2", { text: g }));
      groups[g].forEach(function (d) { main.appendChild(d); });
    });
  }).catch(function (e) { document.getElementById("info").textContent = "could not load openapi.json: " + e; });

  // "Pair a phone": the session's QR code (rendered by the API as PNG) and
  // its live events, read as Server-Sent Events with fetch() so the token
  // travels in a header (EventSource cannot send one); resumed with
  // Last-Event-ID when the stream ends.
  var pairing = null;
  function pairStatus(text) { document.getElementById("pair-status").textContent = text; }
  function authHeaders() {
    var t = document.getElementById("token").value.trim();
    return t ? { Authorization: "Bearer " + t } : {};
  }
  function showQr(session) {
    fetch("/api/v1/sessions/" + encodeURIComponent(session) + "/qr?format=png", { headers: authHeaders() })
      .then(function (r) { if (!r.ok) throw new Error("no QR (" + r.status + ")"); return r.blob(); })
      .then(function (b) {
        var reader = new FileReader();
        reader.onload = function () { document.getElementById("pair-qr").src = reader.result; };
        reader.readAsDataURL(b);
      })
      .catch(function (e) { document.getElementById("pair-qr").removeAttribute("src"); pairStatus(e.message); });
  }
  function onEvent(session, type, data) {
    var log = document.getElementById("pair-events");
    log.textContent = (type + " " + data + "\n" + log.textContent).slice(0, 20000);
    if (type === "session.qr") showQr(session);
    if (type === "session.status") {
      try { pairStatus(JSON.parse(data).data.status); } catch (e) { /* not JSON */ }
    }
  }
  function stream(session, token, lastId) {
    var headers = authHeaders();
    if (lastId) headers["Last-Event-ID"] = lastId;
    fetch("/api/v1/sessions/" + encodeURIComponent(session) + "/events", { headers: headers })
      .then(function (r) {
        if (!r.ok) throw new Error("events: " + r.status);
        var reader = r.body.getReader(), decoder = new TextDecoder(), buf = "";
        var id = lastId, type = "", data = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done || pairing !== token) return;
            buf += decoder.decode(chunk.value, { stream: true });
            var lines = buf.split("\n");
            buf = lines.pop();
            lines.forEach(function (line) {
              if (line === "") { if (data) onEvent(session, type, data); type = ""; data = ""; }
              else if (line.indexOf("id:") === 0) id = line.slice(3).trim();
              else if (line.indexOf("event:") === 0) type = line.slice(6).trim();
              else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
            });
            return pump();
          });
        }
        return pump().then(function () { return id; });
      })
      .then(function (id) { if (pairing === token) setTimeout(function () { stream(session, token, id); }, 2000); })
      .catch(function (e) { pairStatus(e.message); });
  }
  document.getElementById("pair-start").addEventListener("click", function () {
    var session = document.getElementById("pair-session").value.trim();
    if (!session) return;
    pairing = {};
    document.getElementById("pair-events").textContent = "";
    pairStatus("…");
    showQr(session);
    stream(session, pairing, null);
  });
})();
