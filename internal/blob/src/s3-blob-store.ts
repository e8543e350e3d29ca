import type { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { ArrivingBlob, checkedReader, sha256 } from "./blob-checks.js";
import { assertHash, BlobError, type BlobReader, type BlobStore, type ExpectedBlob } from "./blob-store.js";

/** Where an S3BlobStore keeps its blobs, and how it reaches them. */
export interface S3BlobStoreOptions {
  bucket: string;
  /** Put before every key (`team-a/` → `team-a/blobs/ab/abcd…`), so several installs can share a bucket. */
  keyPrefix?: string | undefined;
  /** An S3-compatible server's URL (`http://127.0.0.1:9000`); default: AWS S3. */
  endpoint?: string | undefined;
  /** Default: the AWS SDK's (AWS_REGION, then the AWS profile). */
  region?: string | undefined;
  /** `endpoint/bucket/key` URLs rather than `bucket.endpoint/key`: what most S3-compatible servers need. */
  forcePathStyle?: boolean | undefined;
  /** Default: the AWS SDK's (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, then the AWS profile, …). */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Bytes per part of a multipart upload (S3 takes at least 5 MiB in every part but the last). */
  partBytes?: number | undefined;
  /** Parts uploaded at once while the next ones arrive. */
  partsInFlight?: number | undefined;
}

const PART_BYTES = 8 << 20;
const PARTS_IN_FLIGHT = 4;
/** S3's most parts in one multipart upload. */
const MOST_PARTS = 10_000;

/**
 * Blobs as objects `PREFIX/blobs/ab/abcd…` in an S3 bucket (AWS or an S3-compatible server).
 * @example
 * const blobs = new S3BlobStore({ bucket: "skiff", endpoint: "http://127.0.0.1:9000", forcePathStyle: true });
 * await blobs.check();
 */
export class S3BlobStore implements BlobStore {
  /** The store's S3 client (tests watch its requests). */
  readonly client: S3Client;
  readonly bucket: string;
  private readonly keyPrefix: string;
  private readonly partBytes: number;
  private readonly partsInFlight: number;
  private readonly where: string;

  constructor(options: S3BlobStoreOptions) {
    this.bucket = options.bucket;
    const prefix = (options.keyPrefix ?? "").replace(/^\/+|\/+$/g, "");
    this.keyPrefix = prefix ? `${prefix}/` : "";
    this.partBytes = options.partBytes ?? PART_BYTES;
    this.partsInFlight = options.partsInFlight ?? PARTS_IN_FLIGHT;
    this.where = `S3 bucket "${this.bucket}" at ${options.endpoint ?? "AWS"}`;
    this.client = new S3Client({
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.region ? { region: options.region } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
      // Every blob is checked against its sha256 on the way in and out; the SDK's own checksums would add
      // a CRC pass over every byte, and headers that some S3-compatible servers refuse.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  }

  keyOf(hash: string): string {
    assertHash(hash);
    return `${this.keyPrefix}blobs/${hash.slice(0, 2)}/${hash}`;
  }

  /** Fails with a BlobError saying what to fix unless the bucket exists and the credentials may use it. */
  async check(): Promise<void> {
    await this.attempt("open the bucket", () => this.client.send(new HeadBucketCommand({ Bucket: this.bucket })));
  }

  async put(bytes: Uint8Array): Promise<string> {
    const hash = sha256(bytes);
    if (await this.has(hash)) return hash;
    const request = new PutObjectCommand({ Bucket: this.bucket, Key: this.keyOf(hash), Body: bytes });
    await this.attempt(`store blob ${hash}`, () => this.client.send(request));
    return hash;
  }

  async putStream(source: AsyncIterable<Uint8Array>, expected: ExpectedBlob): Promise<string> {
    const key = this.keyOf(expected.hash);
    const arriving = new ArrivingBlob(expected);
    if (await this.has(expected.hash)) {
      // Not sent again, but still read and checked: the caller is granted the blob once this answers, and
      // bytes that only name a blob someone else stored must not earn that.
      for await (const chunk of source) arriving.add(chunk);
      arriving.finish();
      return expected.hash;
    }
    // The upload is completed only once every byte has passed the check, and aborted otherwise: S3 shows an
    // object only when its multipart upload completes, so no reader ever sees bytes that did not match, and a
    // refused stream leaves no object behind. (A temporary key copied into place would cost a second pass
    // over the bytes inside S3, and leave the temporary object behind if the server died before deleting it.)
    const partBytes = Math.max(this.partBytes, Math.ceil((expected.size ?? expected.maxBytes) / MOST_PARTS));
    let upload: MultipartUpload | undefined;
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    try {
      for await (const chunk of source) {
        arriving.add(chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= partBytes) {
          upload ??= await this.startUpload(expected.hash);
          await upload.add(Buffer.concat(pending, pendingBytes));
          pending = [];
          pendingBytes = 0;
        }
      }
      arriving.finish();
      const rest = Buffer.concat(pending, pendingBytes);
      // A blob smaller than a part goes in one request.
      if (!upload) {
        const request = new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: rest });
        await this.attempt(`store blob ${expected.hash}`, () => this.client.send(request));
      } else {
        if (pendingBytes > 0) await upload.add(rest);
        await upload.complete();
      }
    } catch (error) {
      await upload?.abort();
      throw error;
    }
    return expected.hash;
  }

  private async startUpload(hash: string): Promise<MultipartUpload> {
    const request = new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.keyOf(hash) });
    const doing = `store blob ${hash}`;
    const { UploadId } = await this.attempt(doing, () => this.client.send(request));
    if (!UploadId) throw this.unavailable(doing, new Error("S3 answered no upload ID"));
    return new MultipartUpload(this, hash, UploadId, this.partsInFlight);
  }

  async get(hash: string): Promise<Uint8Array | undefined> {
    const object = await this.getObject(hash);
    if (!object) return undefined;
    const bytes = await object.Body!.transformToByteArray().catch((error: unknown) => {
      throw this.unavailable(`read blob ${hash}`, error);
    });
    if (sha256(bytes) !== hash) throw this.corrupt(hash);
    return bytes;
  }

  async getStream(hash: string): Promise<BlobReader | undefined> {
    const object = await this.getObject(hash);
    if (!object) return undefined;
    const body = object.Body as Readable;
    if (object.ContentLength === undefined) {
      body.destroy();
      throw this.unavailable(`read blob ${hash}`, new Error("S3 answered no Content-Length"));
    }
    return { size: object.ContentLength, stream: checkedReader(body, hash, () => this.corrupt(hash)) };
  }

  private async getObject(hash: string) {
    const request = new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(hash) });
    try {
      return await this.client.send(request);
    } catch (error) {
      if (nameOf(error) === "NoSuchKey") return undefined;
      throw this.unavailable(`read blob ${hash}`, error);
    }
  }

  async has(hash: string): Promise<boolean> {
    const request = new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(hash) });
    try {
      await this.client.send(request);
      return true;
    } catch (error) {
      // A HEAD's answer has no body, so a missing key and a missing bucket both read NotFound; the bucket is
      // checked when the store opens (check).
      if (nameOf(error) === "NotFound" || statusOf(error) === 404) return false;
      throw this.unavailable(`look up blob ${hash}`, error);
    }
  }

  /** Ends the client's connections. */
  close(): void {
    this.client.destroy();
  }

  /** A request to S3, whose failure becomes a BlobError saying what to fix. */
  async attempt<T>(doing: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw this.unavailable(doing, error);
    }
  }

  private unavailable(doing: string, error: unknown): BlobError {
    return new BlobError("BLOB_UNAVAILABLE", `${this.where}: could not ${doing}: ${advice(error)}`, { cause: error });
  }

  private corrupt(hash: string): BlobError {
    return new BlobError("BLOB_CORRUPT", `${this.where}: blob ${hash} is corrupt at key ${this.keyOf(hash)}`);
  }
}

/**
 * One multipart upload: parts go up in the background, up to `inFlight` at once, while the next arrive; the
 * first that failed is thrown by a later `add` or by `complete`.
 */
class MultipartUpload {
  private readonly parts: { PartNumber: number; ETag: string | undefined }[] = [];
  private readonly uploading: Promise<unknown>[] = [];
  private failure: { error: unknown } | undefined;
  private sent = 0;

  constructor(
    private readonly store: S3BlobStore,
    private readonly hash: string,
    private readonly uploadId: string,
    private readonly inFlight: number,
  ) {}

  private get target() {
    return { Bucket: this.store.bucket, Key: this.store.keyOf(this.hash), UploadId: this.uploadId };
  }

  async add(body: Buffer): Promise<void> {
    this.throwIfFailed();
    const PartNumber = ++this.sent;
    const request = new UploadPartCommand({ ...this.target, PartNumber, Body: body });
    const part = this.store
      .attempt(`store blob ${this.hash}`, () => this.store.client.send(request))
      .then(({ ETag }) => {
        this.parts.push({ PartNumber, ETag });
      })
      .catch((error: unknown) => {
        this.failure ??= { error };
      });
    this.uploading.push(part);
    if (this.uploading.length >= this.inFlight) await this.uploading.shift();
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }

  async complete(): Promise<void> {
    await Promise.all(this.uploading.splice(0));
    this.throwIfFailed();
    const Parts = this.parts.sort((a, b) => a.PartNumber - b.PartNumber);
    const request = new CompleteMultipartUploadCommand({ ...this.target, MultipartUpload: { Parts } });
    await this.store.attempt(`store blob ${this.hash}`, () => this.store.client.send(request));
  }

  /**
   * Drops the parts sent so far. Best effort: parts a server keeps anyway (or that a process dying first
   * leaves) never show as an object, and a lifecycle rule for incomplete multipart uploads removes them.
   */
  async abort(): Promise<void> {
    await Promise.all(this.uploading.splice(0));
    await this.store.client.send(new AbortMultipartUploadCommand(this.target)).catch(() => {});
  }
}

function nameOf(error: unknown): string | undefined {
  return (error as { name?: string } | undefined)?.name;
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

/** What went wrong, and what to do about it, for the errors a misconfigured store meets. */
function advice(error: unknown): string {
  const name = nameOf(error) ?? "Error";
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string } | undefined)?.code;
  // An error answer to a HEAD has no body to name the error: the SDK calls it Unknown.
  const status = statusOf(error);
  const label = (name === "Unknown" || name === "UnknownError") && status ? `HTTP ${status}` : name;
  const said = message && message !== name && message !== "UnknownError" ? `${label}: ${message}` : label;
  if (name === "NoSuchBucket" || (name === "NotFound" && status === 404))
    return `the bucket does not exist (${said}); create it, or name another in SKIFF_BLOB_URL`;
  if (["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden"].includes(name))
    return `S3 refused the credentials (${said}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that they may use the bucket`;
  if (status === 403)
    return `S3 refused the request (${said}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that they may use the bucket`;
  if (name === "CredentialsProviderError")
    return `no AWS credentials found (${message}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`;
  if (/region is missing/i.test(message)) return "no region: add ?region=REGION to SKIFF_BLOB_URL, or set AWS_REGION";
  if (status === 301 || name === "PermanentRedirect")
    return `the bucket is in another region (${said}); set ?region= in SKIFF_BLOB_URL to its region`;
  if (code && /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)$/.test(code))
    return `cannot reach the S3 endpoint (${code}); check the endpoint in SKIFF_BLOB_URL and that the server is up`;
  if (name === "TimeoutError")
    return `the S3 endpoint did not answer in time (${message}); check the endpoint in SKIFF_BLOB_URL and that the server is up`;
  return said;
}
