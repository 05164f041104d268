// The web view's page (docs/DESIGN.md §9): the overlay drawn by sigma.js from the server's graph snapshots, kept
// live by its event feed; charts; a peer's details and a lookup from it; the commands, each a POST /api/<command>.
// The token, if the server has one, comes from the address's fragment (#token=...), which no request carries, and
// goes out only in an Authorization header: no cookie, nothing another site could replay.
(function () {
  "use strict";
  const { Sigma, Graph, forceAtlas2 } = window.P2PVendor;
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const auth = token ? { Authorization: "Bearer " + token } : {};
  const $ = (selector) => document.querySelector(selector);
  const RING = 2 ** 160;
  const GRAPH_EVERY = 1000; // ms at least between two graph reads

  const graph = new Graph({ type: "directed", allowSelfLoops: false });
  const renderer = new Sigma(graph, $("#graph"), {
    renderLabels: false, hideEdgesOnMove: true, enableEdgeEvents: false, defaultEdgeType: "line",
  });
  const state = { snapshot: null, reading: false, due: null, lastRead: 0, layout: "ring", colour: "size",
                  joins: 0, departures: 0, path: [], contacts: null, groups: new Map(), requests: null, asking: false, dirty: false };
  const history = { connectivity: [], requests: [], joins: [], departures: [], latency: [] };

  async function call(cmd, args) {
    const response = await fetch("/api/" + cmd, { method: "POST", credentials: "omit", body: JSON.stringify(args || {}),
      headers: { ...auth, "Content-Type": "application/json" } });
    return response.json();
  }

  async function read(path) {
    const response = await fetch(path, { credentials: "omit", headers: auth });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  // -- the overlay ------------------------------------------------------------------------------------------------

  function ringPosition(id) {
    const angle = (Number(id) / RING) * 2 * Math.PI;
    return { x: Math.cos(angle), y: Math.sin(angle) };
  }

  const GROUPS = ["#4fc3f7", "#ef5350", "#66bb6a", "#ffca28", "#ab47bc", "#8d6e63", "#26a69a", "#ec407a"];

  function colourOf(id, size, alive, smallest, largest) {
    if (state.colour === "alive") return alive ? "#4caf50" : "#616161";
    if (state.colour === "group") return state.groups.has(id) ? GROUPS[state.groups.get(id) % GROUPS.length] : "#9e9e9e";
    const share = largest > smallest ? (size - smallest) / (largest - smallest) : 0;
    const red = Math.round(60 + 195 * share), blue = Math.round(255 - 195 * share);
    return `rgb(${red},110,${blue})`;
  }

  function nodeSize(n) { return Math.max(1.5, Math.min(6, 60 / Math.sqrt(n + 1))); }

  function addPeer(id, attributes) {
    if (graph.hasNode(id)) return;
    graph.addNode(id, { ...ringPosition(id), size: nodeSize(graph.order), color: "#90caf9", peerSize: 0, alive: true,
                        ...attributes });
  }

  function draw(snapshot) {
    state.snapshot = snapshot;
    graph.clear();
    const largest = Math.max(0, ...snapshot.size), smallest = Math.min(largest, ...snapshot.size);
    const size = nodeSize(snapshot.ids.length);
    snapshot.ids.forEach((id, i) => {
      graph.addNode(id, { ...ringPosition(id), size, peerSize: snapshot.size[i], alive: snapshot.alive[i],
                          color: colourOf(id, snapshot.size[i], snapshot.alive[i], smallest, largest) });
    });
    const shown = snapshot.edges.length / 2;
    const alpha = Math.max(0.15, Math.min(0.6, 600 / (shown + 1)));
    // blended with the background here: sigma draws edges opaque, so thousands of them would paint it white
    const mix = (edge, back) => Math.round(back + (edge - back) * alpha);
    const colour = `rgb(${mix(160, 16)},${mix(180, 20)},${mix(200, 26)})`;
    for (let k = 0; k < snapshot.edges.length; k += 2) {
      const source = snapshot.ids[snapshot.edges[k]], target = snapshot.ids[snapshot.edges[k + 1]];
      if (!graph.hasEdge(source, target)) graph.addEdge(source, target, { color: colour, size: 1 });
    }
    if (state.layout === "force") force();
    drawPath();
    const left = snapshot.edges_total - shown;
    $("#legend").textContent = `${snapshot.ids.length} peers; ${shown} of ${snapshot.edges_total} table entries drawn` +
      (left > 0 ? ` (at most ${snapshot.per_peer} a peer, spread over its table: ${left} left out)` : "") +
      `; tables read in ${snapshot.read_seconds} s, again in ${snapshot.fresh_in} s at the soonest` +
      `; edges dimmed to ${Math.round(alpha * 100)}% by their number; colour: ` +
      ({ alive: "green answers, grey does not",
         group: state.groups.size ? `partition group (${new Set(state.groups.values()).size} groups, in the order of the partition event)`
                                  : "partition group (no partition now: every peer grey)" }[state.colour] ||
       `table size, blue ${smallest} to red ${largest}`);
    chartBars("#chart-tables", histogram(snapshot.size));
  }

  function force() {
    if (graph.order === 0) return;
    const iterations = Math.max(5, Math.min(100, Math.round(400000 / (graph.size + graph.order))));
    forceAtlas2.assign(graph, { iterations, settings: forceAtlas2.inferSettings(graph) });
  }

  function relayout() {
    if (state.layout === "force") force();
    else graph.forEachNode((id) => graph.mergeNodeAttributes(id, ringPosition(id)));
  }

  function scheduleRead() {
    state.dirty = true;
    if (state.due !== null) return;
    const wait = Math.max(200, state.lastRead + GRAPH_EVERY - Date.now());
    state.due = setTimeout(readGraph, wait);
  }

  // The server reads the tables at most a bounded share of its time and answers the last read until a new one is
  // due ("fresh_in" seconds): a page that has that read already gets "unchanged" and asks again when it is due.
  async function readGraph() {
    state.due = null;
    if (state.reading) { scheduleRead(); return; }
    state.reading = true;
    state.dirty = false;
    try {
      const have = state.snapshot ? "?have=" + state.snapshot.version : "";
      const answer = await read("/feed/graph" + have);
      if (answer.unchanged) {
        if (answer.fresh_in > 0) {
          state.dirty = true;
          clearTimeout(state.due);
          state.due = setTimeout(readGraph, Math.max(GRAPH_EVERY, answer.fresh_in * 1000));
        }
      } else draw(answer);
    } catch (error) {
      note(`graph: ${error.message}`);
    } finally {
      state.reading = false;
      state.lastRead = Date.now();
    }
  }

  // -- the event feed ---------------------------------------------------------------------------------------------

  async function listen() {
    for (;;) {
      try {
        const response = await fetch("/feed/events", { credentials: "omit", headers: auth });
        if (!response.ok) throw new Error((await response.json()).error);
        $("#state").textContent = "live";
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (block.startsWith("data: ")) batch(JSON.parse(block.slice(6)));
          }
        }
      } catch (error) {
        note(`event feed: ${error.message}`);
      }
      $("#state").textContent = "reconnecting…";
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  function batch(message) {
    if (message.dropped) $("#state").textContent = `live (${message.dropped} events dropped: the page read too slowly)`;
    for (const event of message.events) on(event);
  }

  function on(event) {
    switch (event.type) {
      case "joined":
        state.joins += 1;
        addPeer(event.id, {});
        scheduleRead();
        break;
      case "left":
      case "crashed":
        state.departures += 1;
        if (graph.hasNode(event.id)) graph.dropNode(event.id);
        scheduleRead();
        break;
      case "command":
        if (event.phase === "finished") { note(`${event.name} ${event.ok ? "done" : "failed"}`); scheduleRead(); }
        else note(`${event.name} started`);
        break;
      case "progress":
        $("#state").textContent = `${event.phase} ${event.done}/${event.total}`;
        break;
      case "status":
        push(history.connectivity, event.connectivity);
        chartLine("#chart-connectivity", [history.connectivity], 100);
        chartBars("#chart-hops", Object.entries(event.hops.histogram || {}).map(([hops, count]) => [hops, count]));
        $("#hops-summary").textContent = `: mean ${event.hops.mean}, ${Math.round(event.hops.success_rate * 100)}% reached`;
        latency(event.latency);
        break;
      case "churn":
        note(`churn ${event.phase}: ${event.joined} joined, ${event.killed} killed, ${event.left} left`);
        break;
      case "lookup":
        latency(event.latency);
        break;
      case "partition":
        partitioned(event);
        break;
      default:
        break;
    }
  }

  // Lookup latency, shown once an event or a net_status reply carries one under a network model (without one,
  // net_status still times its routes, in microseconds of CPU: no latency worth a chart): a number of seconds, or a
  // summary whose mean (else median) is charted.
  function latency(value) {
    if (!state.modelled) return;
    const seconds = typeof value === "number" ? value : value && (value.mean ?? value.p50 ?? value.median);
    if (typeof seconds !== "number") return;
    $("#latency").hidden = false;
    push(history.latency, seconds);
    chartLine("#chart-latency", [history.latency]);
  }

  // A partition (cut: its groups, ids ascending; healed: none) colours the peers by group, which shows the cut.
  function partitioned(event) {
    state.groups = new Map();
    event.groups.forEach((members, group) => members.forEach((id) => state.groups.set(id, group)));
    note(event.phase === "cut" ? `partition: ${event.groups.map((members) => members.length).join(" / ")} peers`
                               : "partition healed");
    if (event.phase === "cut") { state.colour = "group"; $("#colour").value = "group"; }
    if (state.snapshot) draw(state.snapshot);
  }

  // -- charts -----------------------------------------------------------------------------------------------------

  function push(series, value) { series.push(value); if (series.length > 120) series.shift(); }

  function histogram(values) {
    const counts = new Map();
    for (const value of values) counts.set(value, (counts.get(value) || 0) + 1);
    return [...counts.entries()].sort((a, b) => a[0] - b[0]);
  }

  function chartLine(selector, seriesList, top) {
    const canvas = $(selector), context = canvas.getContext("2d");
    context.clearRect(0, 0, canvas.width, canvas.height);
    const high = top || Math.max(1, ...seriesList.flat());
    const colours = ["#4fc3f7", "#ef5350"];
    seriesList.forEach((series, s) => {
      context.strokeStyle = colours[s % colours.length];
      context.beginPath();
      series.forEach((value, i) => {
        const x = (i / 119) * canvas.width, y = canvas.height - 4 - (value / high) * (canvas.height - 14);
        if (i === 0) context.moveTo(x, y); else context.lineTo(x, y);
        context.fillStyle = context.strokeStyle;
        if (series.length < 30) context.fillRect(x - 1.5, y - 1.5, 3, 3);
      });
      context.stroke();
    });
    context.fillStyle = "#9aa7b4";
    context.fillText(String(Math.round(high * 100) / 100), 2, 10);
  }

  function chartBars(selector, pairs) {
    const canvas = $(selector), context = canvas.getContext("2d");
    context.clearRect(0, 0, canvas.width, canvas.height);
    if (pairs.length === 0) return;
    const high = Math.max(...pairs.map((pair) => pair[1])), width = canvas.width / pairs.length;
    pairs.forEach(([label, count], i) => {
      const height = (count / high) * (canvas.height - 24);
      context.fillStyle = "#4fc3f7";
      context.fillRect(i * width + 1, canvas.height - 12 - height, Math.max(1, width - 2), height);
      context.fillStyle = "#9aa7b4";
      if (pairs.length <= 30 || i % Math.ceil(pairs.length / 30) === 0) context.fillText(String(label), i * width + 1, canvas.height - 2);
    });
    context.fillText(String(high), 2, 10);
  }

  async function tick() {
    push(history.joins, state.joins);
    push(history.departures, state.departures);
    state.joins = state.departures = 0;
    chartLine("#chart-churn", [history.joins, history.departures]);
    if (state.asking) return; // the last stats has not come back (the network is being built): ask once
    state.asking = true;
    const reply = await call("stats").catch(() => null);
    state.asking = false;
    if (reply && reply.ok) {
      state.modelled = Boolean(reply.result.network); // stats has "network" only under a network model
      const now = performance.now(), requests = reply.result.requests;
      if (state.requests) push(history.requests, ((requests - state.requests.count) * 1000) / (now - state.requests.at));
      state.requests = { count: requests, at: now };
      chartLine("#chart-requests", [history.requests]);
    }
  }

  // -- a peer, a lookup, the commands -----------------------------------------------------------------------------

  async function showPeer(id) {
    $("#peer").hidden = false;
    $("#peer").dataset.id = id;
    try {
      const peer = await read("/feed/peer/" + id);
      state.contacts = { id, table: peer.table };
      drawPath();
      const counts = peer.counts
        ? `served ${peer.counts.served} requests, sent ${peer.counts.sent} (${peer.counts.failed} failed); ` +
          `joins ${peer.counts.joins}, refreshes ${peer.counts.refreshes}, departs ${peer.counts.departs}`
        : `no counts: ${peer.counts_error}`;
      $("#peer-info").textContent = `id ${peer.id}\nalive ${peer.alive}, host ${peer.host}, process ${peer.process}\n` +
        `${counts}\ntable: ${peer.table.length} peers; in ${peer.known_by} other tables\n` + peer.table.join("\n");
    } catch (error) {
      $("#peer-info").textContent = `${id}: ${error.message}`;
    }
  }

  async function lookup() {
    const from = $("#peer").dataset.id, ids = graph.nodes().filter((id) => id !== from);
    const target = $("#lookup-target").value.trim() || ids[Math.floor(Math.random() * ids.length)];
    const reply = await call("lookup", { from, id: target });
    show($("#lookup-info"), reply);
    state.path = reply.ok ? reply.result.route.path : [];
    drawPath();
  }

  // Over the graph: the clicked peer's contacts (every entry of its table, red; the thinned edges may leave some
  // out) and the last lookup's path (amber, over them), as the static picture (output_png peer= route=) draws them.
  function drawPath() {
    // the last overlay off: an edge of the graph it covered gets its own look back
    for (const edge of graph.filterEdges((_, attributes) => attributes.path)) {
      const [a, b] = graph.extremities(edge), base = graph.getEdgeAttribute(edge, "base");
      graph.dropEdge(edge);
      if (base) graph.addEdge(a, b, base);
    }
    const mark = (a, b, look) => {  // drawn last, so over the graph's edges
      if (!graph.hasNode(a) || !graph.hasNode(b)) return;
      let base = null;
      if (graph.hasEdge(a, b)) {
        const attributes = graph.getEdgeAttributes(a, b);
        base = attributes.base || (attributes.path ? null : attributes);
        graph.dropEdge(a, b);
      }
      graph.addEdge(a, b, { ...look, path: true, base });
    };
    if (state.contacts) for (const to of state.contacts.table) mark(state.contacts.id, to, { color: "#ef5350", size: 1.5 });
    for (let i = 0; i + 1 < state.path.length; i += 1) mark(state.path[i], state.path[i + 1], { color: "#ffb300", size: 3 });
  }

  function show(element, reply) {
    element.className = reply.ok ? "" : "error";
    element.textContent = reply.ok ? JSON.stringify(reply.result, null, 1).slice(0, 4000) : reply.error;
  }

  function argumentsOf(button) {
    const declared = JSON.parse(button.dataset.args || "{}"), args = {};
    for (const [name, value] of Object.entries(declared)) {
      args[name] = typeof value === "string" && value.startsWith("#") ? Number($(value).value) : value;
    }
    return args;
  }

  for (const button of document.querySelectorAll("#controls button")) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      $("#reply").className = "";
      $("#reply").textContent = `${button.dataset.cmd} running…`;
      try {
        const reply = await call(button.dataset.cmd, argumentsOf(button));
        show($("#reply"), reply);
        if (reply.ok && button.dataset.cmd === "net_status") latency(reply.result.latency);
      } catch (error) {
        show($("#reply"), { ok: false, error: error.message });
      } finally {
        button.disabled = false;
      }
    });
  }
  $("#lookup").addEventListener("click", lookup);
  $("#layout").addEventListener("change", (event) => { state.layout = event.target.value; relayout(); });
  $("#colour").addEventListener("change", (event) => { state.colour = event.target.value; if (state.snapshot) draw(state.snapshot); });
  renderer.on("clickNode", ({ node }) => showPeer(node));

  function note(text) {
    const item = document.createElement("li");
    item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
    $("#log").prepend(item);
    while ($("#log").children.length > 50) $("#log").lastChild.remove();
  }

  // Where a peer is drawn, in pixels of #graph: for the browser tests and tools, which click peers as a user does.
  window.P2PPage = { where: (id) => (graph.hasNode(id) ? renderer.graphToViewport(graph.getNodeAttributes(id)) : null) };

  listen();
  readGraph();
  setInterval(tick, 1000);
})();
