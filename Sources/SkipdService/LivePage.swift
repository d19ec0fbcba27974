import Foundation

/// The live view's page (`GET /`): one self-contained HTML file (inline style and script, nothing fetched from
/// elsewhere) listing every pipeline as `/pipelines` reports it, refreshed each second, each with its latest
/// annotated frame.
///
/// Pictures are polled from `frame.jpg` (at most `live-fps` a second, `live-max-width` wide) rather than shown as
/// MJPEG streams: a browser opens at most six HTTP/1.1 connections to one server, and a stream holds one for as
/// long as it runs, so a page with six pipelines would have none left for `/pipelines`. The ETag of an unchanged
/// frame answers 304, so a finished pipeline costs no encoding. The page reads a bearer token from its own address
/// (`/?token=TOKEN`) and sends it as `Authorization: Bearer` on every request it makes.
enum LivePage {
    static func html(settings: LiveViewSettings) -> String {
        template
            .replacingOccurrences(of: "{{FPS}}", with: String(settings.fps))
            .replacingOccurrences(of: "{{WIDTH}}", with: String(settings.maxWidth))
    }

    private static let template = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>skipd live view</title>
        <style>
        :root { color-scheme: dark; --bg: #15171a; --card: #1f2226; --line: #30343a; --text: #e6e6e6; --dim: #9aa0a6; }
        body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--text); }
        header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px; padding: 12px 16px;
                 border-bottom: 1px solid var(--line); }
        h1 { font-size: 18px; margin: 0; }
        #summary { color: var(--dim); }
        #problem { color: #ff8a80; }
        main { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 16px; padding: 16px; }
        .card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
        .picture { position: relative; background: #000; min-height: 160px; display: flex; align-items: center;
                   justify-content: center; }
        .picture img { display: block; width: 100%; height: auto; }
        .picture .note { position: absolute; padding: 8px; color: var(--dim); text-align: center; }
        .head { display: flex; justify-content: space-between; align-items: center; gap: 8px; padding: 8px 12px; }
        .name { font-weight: 600; overflow-wrap: anywhere; }
        .state { padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #444; white-space: nowrap; }
        .state.running { background: #24553a; }
        .state.starting, .state.stalled, .state.reconnecting { background: #6b5200; }
        .state.failed { background: #7a2626; }
        .state.finished { background: #2f3b52; }
        dl { display: grid; grid-template-columns: auto 1fr auto 1fr; gap: 2px 10px; margin: 0; padding: 0 12px 10px;
             font-size: 13px; }
        dt { color: var(--dim); }
        dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
        .reason { padding: 0 12px 10px; color: #ff8a80; font-size: 13px; overflow-wrap: anywhere; }
        </style>
        </head>
        <body>
        <header><h1>skipd live view</h1><span id="summary">loading…</span><span id="problem"></span></header>
        <main id="pipelines"></main>
        <script>
        "use strict";
        const FPS = {{FPS}}, WIDTH = {{WIDTH}};
        const token = new URLSearchParams(location.search).get("token");
        const headers = token ? { Authorization: "Bearer " + token } : {};
        const cards = new Map();
        const $ = (id) => document.getElementById(id);
        const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

        function element(tag, className, parent) {
          const e = document.createElement(tag);
          if (className) e.className = className;
          if (parent) parent.append(e);
          return e;
        }

        async function errorOf(response) {
          try { return (await response.json()).error || response.statusText; } catch { return response.statusText; }
        }

        function number(value, digits) { return Number.isFinite(value) ? value.toFixed(digits) : "–"; }

        function card(name) {
          if (cards.has(name)) return cards.get(name);
          const root = element("section", "card", $("pipelines"));
          const picture = element("div", "picture", root);
          const img = element("img", "", picture);
          img.alt = "latest frame of " + name;
          img.hidden = true;
          const note = element("div", "note", picture);
          note.textContent = "waiting for a frame…";
          const head = element("div", "head", root);
          element("span", "name", head).textContent = name;
          const state = element("span", "state", head);
          const list = element("dl", "", root);
          const fields = {};
          for (const [key, label] of [["fps", "fps in / out"], ["frames", "frames in / out"],
                                      ["saved", "compute saved"], ["skipped", "skipped"],
                                      ["age", "last frame"], ["reconnects", "reconnects"]]) {
            element("dt", "", list).textContent = label;
            fields[key] = element("dd", "", list);
          }
          const reason = element("div", "reason", root);
          const c = { root, img, note, state, fields, reason, etag: null, url: null, live: true };
          cards.set(name, c);
          poll(name, c);
          return c;
        }

        function show(c, row) {
          c.state.textContent = row.state;
          c.state.className = "state " + row.state;
          c.fields.fps.textContent = number(row.fps_in, 1) + " / " + number(row.fps_out, 1);
          c.fields.frames.textContent = (row.frames_in ?? 0) + " / " + (row.frames_out ?? 0);
          c.fields.saved.textContent = row.dense_macs > 0
            ? number(100 * (1 - row.executed_macs / row.dense_macs), 1) + " %" : "–";
          c.fields.skipped.textContent = row.skipped_frames ?? 0;
          c.fields.age.textContent = row.last_frame_age_seconds == null
            ? "never" : number(row.last_frame_age_seconds, 1) + " s ago";
          c.fields.reconnects.textContent = row.reconnects ?? 0;
          const attempt = row.attempt ? "attempt " + row.attempt + ": " : "";
          c.reason.textContent = row.reason ? attempt + row.reason : "";
          c.reason.hidden = !row.reason;
        }

        // One picture at a time per pipeline, at most FPS a second; an unchanged frame comes back as 304.
        async function poll(name, c) {
          const url = "pipelines/" + encodeURIComponent(name) + "/frame.jpg?width=" + WIDTH;
          while (c.live) {
            const started = performance.now();
            try {
              const response = await fetch(url, { headers, cache: "no-cache" });
              if (response.ok) {
                const tag = response.headers.get("ETag");
                if (tag === null || tag !== c.etag) {
                  const blob = await response.blob();
                  const previous = c.url;
                  c.url = URL.createObjectURL(blob);
                  c.img.src = c.url;
                  if (previous) URL.revokeObjectURL(previous);
                  c.etag = tag;
                  c.img.hidden = false;
                  c.note.hidden = true;
                }
              } else if (c.img.hidden) {
                c.note.textContent = await errorOf(response);
              }
            } catch (error) {
              c.note.textContent = "cannot reach skipd";
            }
            await sleep(Math.max(0, 1000 / FPS - (performance.now() - started)));
          }
        }

        async function refresh() {
          try {
            const response = await fetch("pipelines", { headers, cache: "no-store" });
            if (!response.ok) throw new Error(await errorOf(response));
            const rows = await response.json();
            const names = new Set(rows.map((row) => row.name));
            for (const [name, c] of cards) {
              if (names.has(name)) continue;
              c.live = false;
              c.root.remove();
              if (c.url) URL.revokeObjectURL(c.url);
              cards.delete(name);
            }
            const states = {};
            for (const row of rows) {
              show(card(row.name), row);
              states[row.state] = (states[row.state] ?? 0) + 1;
            }
            const parts = Object.entries(states).sort().map(([state, n]) => n + " " + state);
            const count = rows.length + (rows.length === 1 ? " pipeline" : " pipelines");
            $("summary").textContent = count + (parts.length ? ": " + parts.join(", ") : "");
            $("problem").textContent = "";
          } catch (error) {
            $("problem").textContent = "cannot read /pipelines: " + error.message;
          }
          setTimeout(refresh, 1000);
        }
        refresh();
        </script>
        </body>
        </html>
        """#
}
