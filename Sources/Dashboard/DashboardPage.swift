// DashboardPage: the live dashboard's single page — plain HTML, CSS and
// JavaScript in Swift strings, nothing loaded from elsewhere. The server puts
// the first state in the page; the script renders it and then polls
// `/api/state` every two seconds (or twice as long as the last poll took, on a
// large run), with the trials filter the user typed (the
// server lists at most `DashboardReader.trialRowLimit` trials). One column on a
// phone, a grid on a desktop.
import Foundation

enum DashboardPage {
    /// How often the page asks for a new state, in milliseconds.
    static let pollMilliseconds = 2000

    /// JSON as the page reads it. Slashes stay escaped (`<\/script>`), so no
    /// value can close the script element the first state is embedded in.
    static func json(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(value)
    }

    static func html(initialState: Data) -> Data {
        let state = String(decoding: initialState, as: UTF8.self).replacingOccurrences(of: "<", with: "\\u003c")
        return Data((head + body + "<script id=\"initial-state\" type=\"application/json\">" + state + "</script>\n"
                     + "<script>\n" + script + "</script>\n</body>\n</html>\n").utf8)
    }

    static let head = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>FactSweep — live</title>
        <link rel="icon" href="data:,">
        <style>
        :root { --fg: #1d1d1f; --muted: #6b6b70; --line: #e3e3e8; --card: #f6f6f8; --accent: #0072b2; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg); }
        header, main { padding: 12px 16px; max-width: 1400px; margin: 0 auto; }
        header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px; border-bottom: 1px solid var(--line); }
        h1 { font-size: 20px; margin: 0; }
        h2 { font-size: 17px; margin: 20px 0 8px; }
        .muted { color: var(--muted); font-size: 13px; }
        .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 8px; }
        .card { background: var(--card); border-radius: 8px; padding: 8px 12px; }
        .card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
        .card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
        .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 560px), 1fr)); gap: 12px; }
        .charts svg { width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 8px; }
        .scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
        table { border-collapse: collapse; width: 100%; font-size: 13px; font-variant-numeric: tabular-nums; }
        th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
        th { color: var(--muted); font-weight: 600; position: sticky; top: 0; background: #fff; }
        tbody tr.trial { cursor: pointer; }
        tbody tr.trial:hover, tbody tr.selected { background: #eef5fb; }
        .state { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px; }
        .state.done { background: #d9f2e6; } .state.running { background: #dcebf7; } .state.pending { background: #eee; }
        .state.failed, .state.diverged { background: #fbe1d6; } .state.stale, .state.cancelled, .state.stopped, .state.paused { background: #f6ecd2; }
        td.text { white-space: normal; min-width: 12em; }
        select, input { font: inherit; padding: 2px 4px; }
        #trial-filter { width: min(100%, 26em); }
        #connection.lost { color: #b34700; font-weight: 600; }
        @media (max-width: 600px) {
          header, main { padding: 8px 10px; }
          .card .value { font-size: 18px; }
          th, td { padding: 4px 6px; }
          .wide { display: none; }
        }
        </style>
        </head>

        """

    static let body = """
        <body>
        <header>
          <h1>FactSweep <span id="sweeps"></span></h1>
          <span class="muted">read-only view of <span id="database"></span> · updated <span id="updated"></span>
            <span id="pace"></span> <span id="connection"></span></span>
        </header>
        <main>
          <section class="cards" aria-label="progress">
            <div class="card"><div class="label">Epochs trained</div><div class="value" id="epochs-recorded">–</div>
              <div class="muted">of <span id="epochs-planned">–</span></div></div>
            <div class="card"><div class="label">Trials done</div><div class="value" id="trials-done">–</div>
              <div class="muted">of <span id="trials-total">–</span></div></div>
            <div class="card"><div class="label">Running</div><div class="value" id="trials-running">–</div>
              <div class="muted"><span id="trials-pending">–</span> pending · <span id="trials-ended">–</span> ended</div></div>
            <div class="card"><div class="label">Throughput</div><div class="value" id="throughput">–</div>
              <div class="muted">epochs per hour</div></div>
            <div class="card"><div class="label">ETA</div><div class="value" id="eta">–</div>
              <div class="muted">at the recent rate</div></div>
            <div class="card"><div class="label">Workers</div><div class="value" id="workers-connected">–</div>
              <div class="muted">connected</div></div>
          </section>
          <h2>Curves</h2>
          <p class="muted">Per condition: mean line, shaded min–max across seeds.</p>
          <div class="charts" id="charts"></div>
          <h2>Workers</h2>
          <div class="scroll"><table id="workers"><thead><tr>
            <th>worker</th><th>host</th><th>state</th><th>trial</th><th>condition</th><th>epoch</th><th>heartbeat</th>
          </tr></thead><tbody></tbody></table></div>
          <h2>Trials</h2>
          <p class="muted">Select a trial to see its answers at each evaluation.</p>
          <p><label>Filter <input id="trial-filter" type="search" maxlength="\(DashboardServer.maximumFilterLength)" autocomplete="off"
            placeholder="words of key, condition, method or state"></label>
            <span class="muted" id="trials-shown"></span></p>
          <div class="scroll"><table id="trials"><thead><tr></tr></thead><tbody></tbody></table></div>
          <section id="answers-section" hidden>
            <h2>Answers of <span id="answers-trial"></span></h2>
            <label>Evaluation at epoch <select id="answers-epoch"></select></label>
            <span class="muted" id="answers-accuracy"></span>
            <div class="scroll"><table id="answers"><thead><tr>
              <th>question</th><th>reference</th><th>answer</th><th>similarity</th>
            </tr></thead><tbody></tbody></table></div>
          </section>
        </main>

        """

    /// The page's script: renders a state with DOM methods (text never becomes markup; the charts' SVG is the
    /// server's own, its text escaped by `SVGChartWriter`), polls, and loads a trial's answers on demand.
    static let script = """
        "use strict";
        const pollMilliseconds = \(pollMilliseconds);
        const maxWaitMilliseconds = 60000;
        let selectedTrial = null;
        let answers = null;
        let lastCharts = {};
        // The trials filter, kept in the address so that a reload or a shared link keeps it.
        let filter = new URLSearchParams(location.search).get("filter") || "";
        let timer = null;
        let polling = false;
        let pollAgain = false;

        function byId(id) { return document.getElementById(id); }
        function setText(id, text) { const e = byId(id); if (e.textContent !== text) e.textContent = text; }
        function cell(row, text, className) {
          const td = document.createElement("td");
          td.textContent = text;
          if (className) td.className = className;
          row.appendChild(td);
          return td;
        }
        function number(value, digits) { return value === null || value === undefined ? "–" : Number(value).toFixed(digits); }
        function compact(value) {
          if (value === null || value === undefined) return "–";
          const v = Number(value);
          return (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
        }
        function duration(seconds) {
          if (seconds === null || seconds === undefined) return "–";
          const s = Math.max(0, Math.round(seconds));
          if (s < 60) return s + " s";
          if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
          return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
        }

        /// The trials table's columns; "stopping" appears only when some trial has a decision, "waiting"
        /// only when some pending trial waits for a worker whose build reads its settings.
        function trialColumns(trials) {
          const columns = [
            ["condition", t => t.condition], ["method", t => t.method + (t.rank ? " r" + t.rank : "")],
            ["lr", t => compact(t.learningRate)], ["seed", t => String(t.seed)],
            ["state", null], ["epoch", t => t.lastEpoch + "/" + t.epochs],
            ["accuracy", t => t.accuracy === null || t.accuracy === undefined ? "–" : number(t.accuracy, 3) + " @" + t.lastEvaluatedEpoch],
            ["loss", t => number(t.loss, 4)], ["key", t => t.key.slice(0, 12), "wide"],
          ];
          if (trials.some(t => t.decision)) columns.splice(5, 0, ["stopping", t => t.decision || ""]);
          if (trials.some(t => t.waiting)) columns.splice(5, 0, ["waiting", t => t.waiting || "", "text"]);
          return columns;
        }

        function renderTrials(trials) {
          const table = byId("trials");
          const columns = trialColumns(trials);
          const head = table.tHead.rows[0];
          const names = columns.map(c => c[0]).join(",");
          if (head.dataset.columns !== names) {
            head.replaceChildren();
            for (const c of columns) { const th = document.createElement("th"); th.textContent = c[0]; if (c[2]) th.className = c[2]; head.appendChild(th); }
            head.dataset.columns = names;
          }
          const body = document.createElement("tbody");
          for (const t of trials) {
            const row = document.createElement("tr");
            row.className = "trial" + (t.key === selectedTrial ? " selected" : "");
            row.dataset.key = t.key;
            for (const c of columns) {
              if (c[1] === null) {
                const td = cell(row, "");
                const badge = document.createElement("span");
                badge.className = "state " + t.status;
                badge.textContent = t.status;
                td.appendChild(badge);
              } else {
                cell(row, c[1](t), c[2]);
              }
            }
            row.addEventListener("click", () => selectTrial(t.key));
            body.appendChild(row);
          }
          table.replaceChild(body, table.tBodies[0]);
        }

        function renderWorkers(workers) {
          const body = document.createElement("tbody");
          for (const w of workers) {
            const row = document.createElement("tr");
            cell(row, w.id); cell(row, w.host); cell(row, w.status);
            cell(row, w.trial ? w.trial.slice(0, 12) : "idle"); cell(row, w.condition || "");
            cell(row, w.epoch === null || w.epoch === undefined ? "" : String(w.epoch));
            cell(row, w.heartbeatAgeSeconds === null || w.heartbeatAgeSeconds === undefined ? "–" : duration(w.heartbeatAgeSeconds) + " ago");
            body.appendChild(row);
          }
          if (workers.length === 0) { const row = document.createElement("tr"); cell(row, "no worker has connected yet").colSpan = 7; body.appendChild(row); }
          const table = byId("workers");
          table.replaceChild(body, table.tBodies[0]);
        }

        function renderCharts(charts) {
          const box = byId("charts");
          for (const chart of charts) {
            let figure = box.querySelector('[data-chart="' + chart.name + '"]');
            if (!figure) {
              figure = document.createElement("figure");
              figure.style.margin = "0";
              figure.dataset.chart = chart.name;
              box.appendChild(figure);
            }
            if (lastCharts[chart.name] !== chart.svg) {
              // The server's own SVG (SVGChartWriter escapes every text in it).
              figure.innerHTML = chart.svg;
              lastCharts[chart.name] = chart.svg;
            }
          }
        }

        function render(state) {
          const run = state.run;
          const count = s => run.trials[s] || 0;
          setText("sweeps", run.sweeps.join(", "));
          setText("database", run.database);
          setText("updated", new Date(state.readAt).toLocaleTimeString());
          setText("epochs-recorded", String(run.epochsRecorded));
          setText("epochs-planned", String(run.epochsPlanned));
          setText("trials-done", String(count("done")));
          setText("trials-total", String(run.totalTrials));
          setText("trials-running", String(count("running") + count("stale")));
          setText("trials-pending", String(count("pending")));
          setText("trials-ended", String(count("failed") + count("diverged") + count("cancelled") + count("stopped")));
          setText("throughput", run.epochsPerHour > 0 ? compact(run.epochsPerHour) : "–");
          const eta = duration(run.etaSeconds);
          setText("eta", count("pending") + count("running") + count("stale") === 0 ? "finished"
                         : (run.etaIsUpperBound && run.etaSeconds != null ? "≤ " + eta : eta));
          setText("workers-connected", String(run.connectedWorkers));
          renderCharts(state.charts);
          // A state asked for before the filter last changed lists other trials: the next poll brings them.
          if (state.filter === filter) {
            renderTrials(state.trials);
            const listed = state.trials.length;
            const matching = filter ? state.trialsMatching + " of " + run.totalTrials + " trials match" : "";
            const cut = listed < state.trialsMatching ? "the first " + listed + " of " + state.trialsMatching + " are listed" : "";
            setText("trials-shown", [matching, cut].filter(t => t).join("; "));
          }
          renderWorkers(state.workers);
        }

        function renderAnswers() {
          const section = byId("answers-section");
          if (!answers) { section.hidden = true; return; }
          section.hidden = false;
          setText("answers-trial", answers.condition + " " + answers.key.slice(0, 12));
          const select = byId("answers-epoch");
          const epochs = answers.evaluations.map(e => String(e.epoch));
          if (Array.from(select.options).map(o => o.value).join(",") !== epochs.join(",")) {
            const chosen = select.value;
            select.replaceChildren();
            for (const e of epochs) { const o = document.createElement("option"); o.value = e; o.textContent = e === "0" ? "0 (base model)" : e; select.appendChild(o); }
            select.value = epochs.includes(chosen) ? chosen : (epochs[epochs.length - 1] || "");
          }
          const evaluation = answers.evaluations.find(e => String(e.epoch) === select.value);
          setText("answers-accuracy", evaluation && evaluation.accuracy !== null && evaluation.accuracy !== undefined
            ? "accuracy " + number(evaluation.accuracy, 3) : (evaluation ? "" : "no evaluation recorded yet"));
          const body = document.createElement("tbody");
          for (const a of (evaluation ? evaluation.answers : [])) {
            const row = document.createElement("tr");
            cell(row, a.question + (a.paraphrase ? " (paraphrase)" : ""), "text");
            cell(row, a.reference, "text");
            cell(row, a.answer, "text");
            cell(row, number(a.similarity, 3));
            body.appendChild(row);
          }
          const table = byId("answers");
          table.replaceChild(body, table.tBodies[0]);
        }

        async function loadAnswers() {
          if (!selectedTrial) return;
          const reply = await fetch("api/trials/" + encodeURIComponent(selectedTrial), { cache: "no-store" });
          if (reply.ok) { answers = await reply.json(); renderAnswers(); }
        }

        function selectTrial(key) {
          selectedTrial = key;
          for (const row of byId("trials").tBodies[0].rows) row.classList.toggle("selected", row.dataset.key === key);
          loadAnswers().catch(() => {});
        }

        function schedule(milliseconds) { clearTimeout(timer); timer = setTimeout(poll, milliseconds); }

        async function poll() {
          if (polling) { pollAgain = true; return; }
          polling = true;
          // The filter this poll asks for: if it changes meanwhile, the next poll goes out at once.
          const asked = filter;
          const started = performance.now();
          let wait = pollMilliseconds;
          try {
            const reply = await fetch("api/state?filter=" + encodeURIComponent(asked), { cache: "no-store" });
            if (reply.status === 400) {
              // The server refused the filter (too long: a hand-made address); say so, and keep polling.
              const problem = await reply.json();
              setText("trials-shown", problem.error || "the filter was refused");
            } else {
              if (!reply.ok) throw new Error("HTTP " + reply.status);
              render(await reply.json());
            }
            setText("connection", "");
            byId("connection").className = "";
            if (selectedTrial) await loadAnswers();
            // A large run's state takes the server seconds to make after each commit: waiting twice as long
            // as the last poll took keeps an open page from holding more than a third of the server's time.
            // At most a minute: one poll stalled (a suspended laptop, a busy host) must not stop the page.
            wait = Math.min(maxWaitMilliseconds, Math.max(pollMilliseconds, 2 * (performance.now() - started)));
            setText("pace", wait > pollMilliseconds ? "· every " + Math.round(wait / 1000) + " s" : "");
          } catch (error) {
            setText("pace", "");
            setText("connection", "· connection lost, retrying");
            byId("connection").className = "lost";
          }
          polling = false;
          schedule(pollAgain || asked !== filter ? 0 : wait);
          pollAgain = false;
        }

        byId("answers-epoch").addEventListener("change", renderAnswers);
        byId("trial-filter").value = filter;
        byId("trial-filter").addEventListener("input", event => {
          filter = event.target.value;
          // encodeURIComponent writes a space as %20: the server reads "+" as itself, as URLs mean it.
          history.replaceState(null, "", location.pathname + (filter ? "?filter=" + encodeURIComponent(filter) : ""));
          schedule(250);
        });
        render(JSON.parse(byId("initial-state").textContent));
        schedule(pollMilliseconds);

        """
}
