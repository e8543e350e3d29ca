export { ImageBuilder, type ImageBuilderOptions } from "./builder.js";
export { type BuiltImage, ImageBuildError } from "./built-image.js";
export { imageContainerSpec } from "./container.js";
export { exportLayout } from "./export.js";
export { pullRegistryBase } from "./registry.js";
export { describe } from "./steps.js";
