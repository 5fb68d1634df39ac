// A minimal WabSync webhook receiver: it verifies each delivery's signature
// with the stock Standard Webhooks library (npm: standardwebhooks), ignores
// events it has already handled (by webhook-id), and answers 2xx quickly.
//
//   npm install
//   WABSYNC_WEBHOOK_SECRET=whsec_… PORT=8000 npm start
//
// Then create a webhook whose url is http://<this host>:8000/webhooks/wabsync
// and use the secret its creation returned.
import http from "node:http";
import { Webhook } from "standardwebhooks";

const secret = process.env.WABSYNC_WEBHOOK_SECRET;
if (!secret) {
  console.error("set WABSYNC_WEBHOOK_SECRET to the webhook's secret (whsec_…)");
  process.exit(1);
}
const wh = new Webhook(secret);
const port = Number(process.env.PORT || 8000);

// Deliveries are at least once: a retry after a lost answer brings the same
// webhook-id again. A real receiver keeps handled ids in its database.
const seen = new Set();

const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/webhooks/wabsync") {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > 10 << 20) req.destroy();
    else chunks.push(c);
  });
  req.on("end", () => {
    // Verify over the raw body, exactly as received: parsing and
    // re-serialising the JSON would change it.
    const body = Buffer.concat(chunks).toString("utf8");
    let ev;
    try {
      // Checks the signature and that webhook-timestamp is within five
      // minutes of now; returns the parsed body.
      ev = wh.verify(body, req.headers);
    } catch (err) {
      res.writeHead(401).end("invalid signature");
      return;
    }
    if (seen.has(ev.id)) {
      res.writeHead(204).end(); // already handled: acknowledge again
      return;
    }
    seen.add(ev.id);
    console.log(`${ev.type} session=${ev.session_id ?? "-"} sequence=${ev.sequence} id=${ev.id}`, JSON.stringify(ev.data));
    res.writeHead(204).end();
  });
});

server.listen(port, () => console.log(`listening on :${port}`));
