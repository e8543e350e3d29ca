import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * The floor of moving bytes: one plain HTTP upload of `bytes` to a node:http server on loopback that
 * counts what it receives (client and server in this process), after a warm-up of a tenth of the size.
 */
export async function httpUpload(bytes: number): Promise<{ ms: number; mibPerSec: number }> {
  const server = http.createServer((request, response) => {
    let received = 0;
    request.on("data", (chunk: Buffer) => {
      received += chunk.length;
    });
    request.on("end", () => response.end(String(received)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const upload = (body: Uint8Array) =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port, method: "PUT", path: "/", headers: { "content-length": body.length } },
        (res) => {
          let text = "";
          res.on("data", (chunk: Buffer) => {
            text += chunk;
          });
          res.on("end", () => (Number(text) === body.length ? resolve() : reject(new Error(`got ${text} bytes`))));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  try {
    const body = new Uint8Array(bytes).fill(7);
    await upload(body.subarray(0, Math.ceil(bytes / 10)));
    const start = performance.now();
    await upload(body);
    const ms = performance.now() - start;
    return { ms, mibPerSec: bytes / 1024 / 1024 / (ms / 1000) };
  } finally {
    server.close();
  }
}
