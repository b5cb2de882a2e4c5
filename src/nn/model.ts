// A module that is a whole model shows its model record (metadata.ts) as
// properties: `model.preprocess = stats` or `model.trainedRates` read and
// write the record that fit, evaluate, save, slice and serve use. The
// built-in models show it; a custom model may extend Model, or call
// modelRecord(m) directly. Layers do not carry it.
import { modelRecord, type ModelRecord } from '../metadata.js';
import { Module } from './module.js';

const SHOWN = ['config', 'inputShape', 'trainedRates', 'preprocess', 'latencyProfile', 'accuracy', 'dataset', 'vocabulary'] as const satisfies readonly (keyof ModelRecord)[];

/**
 * Gives instances of `cls` the record's fields as properties (accessors on its
 * prototype). Declare the fields on the class too: `interface Cls extends ModelRecord {}`.
 */
export function showModelRecord(cls: abstract new (...args: never[]) => Module): void {
  for (const key of SHOWN) {
    Object.defineProperty(cls.prototype, key, {
      get(this: Module) {
        return modelRecord(this)[key];
      },
      set(this: Module, value: unknown) {
        (modelRecord(this) as Record<string, unknown>)[key] = value;
      },
      configurable: true,
      enumerable: false,
    });
  }
}

// The fields are accessors that showModelRecord puts on the prototype.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-unsafe-declaration-merging
export interface Model extends ModelRecord {}

/** A module that is a whole model: its record's fields are its properties. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export abstract class Model extends Module {}
showModelRecord(Model);
