// What the skiff command and the worker use to drive apps (collect, bundle, upload, call the API); not
// for users' code, which imports "skiff".
export { type CollectedApp, collectApp, localSecretsOf, manifestOf } from "./app.js";
export { Client, type ClientOptions, type ShellEvent } from "./client.js";
export { decodeValue, encodeValue } from "./codec.js";
export { setContext } from "./context.js";
export { buildImage, uploadImageFiles } from "./image.js";
export { parseDotenv } from "./secret.js";
