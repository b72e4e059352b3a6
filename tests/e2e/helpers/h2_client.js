// An HTTP/2 (h2c, prior knowledge) client on node's own http2 module: ONE
// session, all requests issued at once as concurrent streams on it.
//
//     node h2_client.js ORIGIN PATH[*N] ...
// e.g. `node h2_client.js http://10.250.1.2:8080 /files/a*20 /admin`.
// Prints "session local_port=P" once connected, then for each stream
// "status PATH CODE" (the response's :status) or "error PATH CODE" (a
// stream reset or session error), and at the end
// "done streams=N answered=K sessions=1".  The run is bounded: after 20 s it
// prints "timeout" and exits 1.
"use strict";
const http2 = require("http2");

const origin = process.argv[2];
const paths = [];
for (const arg of process.argv.slice(3)) {
  const m = /^(.*)\*(\d+)$/.exec(arg);
  const n = m ? parseInt(m[2], 10) : 1;
  for (let i = 0; i < n; i++) paths.push(m ? m[1] : arg);
}

const limit = setTimeout(() => {
  console.log("timeout");
  process.exit(1);
}, 20000);

const session = http2.connect(origin, { peerMaxConcurrentStreams: 1000 });
let left = paths.length;
let answered = 0;
session.on("error", (e) => console.log("session_error " + (e.code || e.message)));
session.on("connect", () => {
  console.log("session local_port=" + session.socket.localPort);
});

function finish() {
  left -= 1;
  if (left === 0) {
    console.log("done streams=" + paths.length + " answered=" + answered + " sessions=1");
    clearTimeout(limit);
    session.close();
  }
}

for (const path of paths) {
  const req = session.request({ ":method": "GET", ":path": path });
  let reported = false;
  req.on("response", (headers) => {
    reported = true;
    console.log("status " + path + " " + headers[":status"]);
    answered += 1;
  });
  req.on("error", (e) => {
    if (!reported) console.log("error " + path + " " + (e.code || e.message));
    reported = true;
  });
  req.resume();
  req.on("close", () => {
    if (!reported) console.log("error " + path + " closed-rst=" + req.rstCode);
    finish();
  });
  req.end();
}
