import { describe, expect, it } from "vitest";
import { parseBlobUrl } from "./blob-url.js";
import { loadConfig } from "./config.js";

describe("SKIFF_BLOB_URL", () => {
  it("reads a bucket, its key prefix and an S3-compatible server's options", () => {
    expect(
      parseBlobUrl("s3://skiff-blobs/team-a/?endpoint=http://127.0.0.1:9000&region=eu-west-1&forcePathStyle=false"),
    ).toEqual({
      kind: "s3",
      bucket: "skiff-blobs",
      keyPrefix: "team-a/",
      endpoint: "http://127.0.0.1:9000",
      region: "eu-west-1",
      forcePathStyle: false,
    });
    expect(parseBlobUrl("s3://skiff-blobs/a/b?endpoint=https://s3.example.com")).toEqual({
      kind: "s3",
      bucket: "skiff-blobs",
      keyPrefix: "a/b/",
      endpoint: "https://s3.example.com",
      region: "us-east-1",
      forcePathStyle: true,
    });
  });

  it("leaves AWS's region to the AWS SDK, and uses virtual-hosted URLs there", () => {
    expect(parseBlobUrl("s3://skiff-blobs")).toEqual({
      kind: "s3",
      bucket: "skiff-blobs",
      keyPrefix: "",
      forcePathStyle: false,
    });
  });

  it("reads a file URL as a directory", () => {
    expect(parseBlobUrl("file:///var/lib/skiff/blobs")).toEqual({ kind: "fs", root: "/var/lib/skiff/blobs" });
  });

  it("refuses a malformed URL, saying what a valid one looks like", () => {
    for (const [text, why] of [
      ["skiff-blobs", /is not a URL/],
      ["gs://skiff-blobs", /"gs:" is not a blob store scheme/],
      ["s3://Skiff_Blobs", /is not a bucket name/],
      ["s3://KEY:SECRET@skiff-blobs", /credentials do not go in the URL/],
      ["s3://skiff-blobs?endpiont=http://x", /unknown option "endpiont"/],
      ["s3://skiff-blobs?endpoint=127.0.0.1:9000", /not an http\(s\) URL/],
      ["s3://skiff-blobs?forcePathStyle=yes", /forcePathStyle is true or false/],
      ["file://host/path", /a file URL names a local directory/],
    ] as const) {
      expect(() => parseBlobUrl(text)).toThrow(why);
      expect(() => parseBlobUrl(text)).toThrow(/use s3:\/\/BUCKET\/PREFIX\?endpoint=.* or file:\/\/\/absolute\/path/);
    }
  });

  it("is parsed with the rest of the configuration, unset when empty", () => {
    expect(loadConfig({ SKIFF_HOME: "/tmp/h" }).SKIFF_BLOB_URL).toBeUndefined();
    expect(loadConfig({ SKIFF_HOME: "/tmp/h", SKIFF_BLOB_URL: "" }).SKIFF_BLOB_URL).toBeUndefined();
    expect(loadConfig({ SKIFF_HOME: "/tmp/h", SKIFF_BLOB_URL: "s3://skiff-blobs/x" }).SKIFF_BLOB_URL).toMatchObject({
      bucket: "skiff-blobs",
      keyPrefix: "x/",
    });
    expect(() => loadConfig({ SKIFF_BLOB_URL: "s3://x" })).toThrow(
      /environment variable SKIFF_BLOB_URL is invalid: "x" is not a bucket name/,
    );
  });
});
