// The data layer's public API in one import.
export { CIFAR_RECORD, type CifarOptions, loadCifar10 } from './cifar.js';
export { byteToSigned, DataError, type ImageDataset, U8Dataset } from './dataset.js';
export { type FolderOptions, loadImageFolder } from './folder.js';
export { type IdxOptions, loadIdx } from './idx.js';
export { type Batch, BatchLoader, type LoaderOptions, type LoaderState } from './loader.js';
export { loadMnist, type MnistOptions } from './mnist.js';
export { adapt, fashionMnistPath, type OpenOptions, openDataset } from './open.js';
