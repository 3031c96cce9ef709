// ddpm-ts as a library: every layer's public pieces in one import, with typed options. The `ddpm`
// command (src/cli) is built on exactly these. Import from 'ddpm-ts' after `npm run build`, or from
// this file under tsx.
//
//   import { loadModel, nodeEngine, createDenoiser, diffusionFromSpec, ddimSample, Rng } from 'ddpm-ts';
//   const m = loadModel('models/mnist');
//   const den = await createDenoiser(nodeEngine(), m.spec.unet, m.params, 16);
//   const x0 = await ddimSample(diffusionFromSpec(m.spec.diffusion), den.denoise, [16, 1, 32, 32], new Rng(0), { steps: 50 });

// Data: MNIST (embedded), IDX, CIFAR-10 binaries, image folders; the resumable batch loader.
export * from './data/index.js';
// The diffusion math and samplers (take a denoise(x, t) function).
export * from './diffusion/index.js';
// Evaluation: feature networks (pytorch-fid's Inception-v3, the domain classifiers), float64 metrics
// (FID, IS, KID, precision/recall), streamed feature extraction of a model's samples or a data set.
export {
  classifierFeatureNet,
  type ClassifierConfig,
  DIGIT_CLASSIFIER,
  loadClassifier,
} from './eval/classifier.js';
export { type ClassifierTrainOptions, trainClassifier } from './eval/classifierTrain.js';
export {
  ALL_METRICS,
  computeMetrics,
  extractFeatures,
  type FeatureSet,
  type MetricName,
  type MetricOptions,
  type MetricValues,
  mergeFeatureSets,
  type Reference,
  shardRanges,
} from './eval/evaluate.js';
export { type FeatureBatch, type FeatureNet, metricLabel } from './eval/featureNet.js';
export { datasetImages, type ImageSource, modelImages, type SamplerChoice } from './eval/imageSource.js';
export { INCEPTION_WEIGHTS_FILE, inceptionFeatureNet, loadInceptionWeights } from './eval/inception.js';
export {
  FeatureStats,
  frechetDistance,
  inceptionScore,
  kernelInceptionDistance,
  type MeanStd,
  precisionRecall,
} from './eval/metrics.js';
// Execution engines.
export type {
  Engine,
  EngineSession,
  ExecutionProvider,
  FusedKernel,
  SessionOptions,
} from './engine/engine.js';
export { nodeEngine, onnxruntimeNodeEngine } from './engine/node.js';
export { nativeEngine } from './engine/native.js';
export { ortEngine } from './engine/ort.js';
// The graph builder, autodiff and ONNX export.
export { grad } from './graph/autodiff.js';
export { type ConvOptions, Graph, GraphError, type Value } from './graph/graph.js';
export { lowerConvsToNchwc } from './graph/nchwc.js';
export { type ExportOptions, toOnnx } from './graph/onnx.js';
export {
  type GraphPass,
  PASS_NAMES,
  PASSES,
  type PassOptions,
  runPasses,
  selectPasses,
} from './graph/passes/index.js';
// Model folders.
export {
  type DiffusionSpec,
  defaultSpec,
  diffusionFromSpec,
  type ModelSpec,
  PAPER_DIFFUSION,
  validateSpec,
} from './model/spec.js';
export { type LoadedModel, loadModel, saveModel, unetFromDiffusers } from './model/weights.js';
// The U-Net.
export {
  buildUNet,
  CIFAR10_UNET,
  countParams,
  type InitMode,
  initParams,
  type ParamStore,
  SMALL_UNET,
  TINY_UNET,
  type UNetConfig,
  unetParamSpecs,
} from './nn/unet.js';
// The U-Net as a Denoiser.
export { buildInferenceModel, createDenoiser, type UNetDenoiser } from './sample/denoiser.js';
// Training.
export { type CheckpointState, loadCheckpoint, saveCheckpoint } from './train/checkpoint.js';
export {
  type AdamConfig,
  type AdamState,
  adamStep,
  cloneParams,
  emaUpdate,
  learningRate,
  newAdamState,
  PAPER_ADAM,
} from './train/optim.js';
export {
  buildTrainModel,
  createTrainSession,
  type TrainBatch,
  type TrainSession,
  type TrainStepOutput,
} from './train/trainGraph.js';
export {
  DEFAULT_TRAIN,
  readLog,
  type StepLog,
  type TrainHooks,
  type TrainOptions,
  type TrainResult,
  train,
} from './train/trainer.js';
// Utilities.
export { encodePng, type GridOptions, makeGrid, type RasterImage } from './util/image.js';
export { writeGifAtomic, writePngAtomic } from './util/imageFile.js';
export { Rng, type RngState } from './util/rng.js';
export type { Tensor } from './util/tensor.js';
