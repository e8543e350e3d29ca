import { request } from "node:http";

/**
 * Streams `total` bytes (never held at once) to the server as the body of `method path`, with `headers`;
 * resolves with the answer as soon as it comes, even while the body is still being sent.
 */
export function sendStream(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  total: number,
): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const chunk = Buffer.alloc(1024 * 1024, 120);
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (part: Buffer) => parts.push(part));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString(), headers: res.headers });
        req.destroy();
      });
      res.on("error", reject);
    });
    // The server may stop reading and close once it has answered: that ends the upload, not the test.
    req.on("error", () => {});
    let sent = 0;
    const pump = () => {
      while (sent < total && !req.destroyed) {
        const piece = chunk.subarray(0, Math.min(chunk.length, total - sent));
        sent += piece.length;
        if (!req.write(piece)) {
          req.once("drain", pump);
          return;
        }
      }
      if (sent >= total && !req.destroyed) req.end();
    };
    pump();
  });
}
