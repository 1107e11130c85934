// The live outage stream. EventSource cannot send the bearer token, so each connection
// first trades it for a one-use ticket; a ticket cannot be reused, so the browser's own
// reconnect would fail: on any error we close and reconnect ourselves with a new ticket.
export function startLive({ api, base, onOutage, onResync, onStatus, onUnauthorized }) {
  let source = null;
  let stopped = false;
  let timer = null;
  let delayMs = 1000;

  function schedule() {
    if (stopped || timer) return;
    onStatus("reconnecting");
    timer = setTimeout(() => { timer = null; connect(); }, delayMs);
    delayMs = Math.min(delayMs * 2, 30000);
  }

  async function connect() {
    if (stopped) return;
    let ticket;
    try {
      ({ ticket } = await api.post("/stream/tickets"));
    } catch (err) {
      if (err.status === 401) { onUnauthorized(); return; }
      schedule();
      return;
    }
    if (stopped) return;
    const es = new EventSource(`${base}/stream/outages?ticket=${encodeURIComponent(ticket)}`);
    source = es;
    es.addEventListener("open", () => {
      delayMs = 1000;
      onStatus("live");
      onResync(); // anything missed while we were away
    });
    es.addEventListener("outage", (event) => {
      try { onOutage(JSON.parse(event.data)); } catch (err) { onResync(); }
    });
    es.addEventListener("resync", () => onResync());
    es.addEventListener("dropped", () => { es.close(); schedule(); });
    es.addEventListener("error", () => {
      es.close();
      if (source === es) source = null;
      schedule();
    });
  }

  connect();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (source) source.close();
      onStatus("off");
    },
  };
}
