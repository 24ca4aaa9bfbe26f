import { describe, expect, it } from 'vitest';
import { documentFromJsonb, UnsupportedDocument } from '../../worker/pg-snapshot.js';

describe('documents as FerretDB 1.24 stores them in PostgreSQL (_jsonb with its $s schema)', () => {
  it('come back as the MongoDB wire gives them: fields in $k order, nested objects and arrays by their own schema', () => {
    // As read from a worker's table (psql): the keys of a jsonb value come sorted, the order is in $k.
    const jsonb = {
      n: 32,
      $s: {
        p: {
          n: { t: 'int' },
          _id: { t: 'string' },
          tags: { t: 'array', i: [{ t: 'string' }, { t: 'object', $s: { p: { b: { t: 'bool' }, a: { t: 'null' } }, $k: ['b', 'a'] } }] },
          geo: { t: 'object', $s: { p: { lon: { t: 'double' }, lat: { t: 'double' } }, $k: ['lat', 'lon'] } },
          big: { t: 'long' },
        },
        $k: ['_id', 'geo', 'n', 'tags', 'big'],
      },
      _id: 'k45',
      big: 9_007_199_254_740_991,
      geo: { lat: 1.5, lon: -2 },
      tags: ['x', { a: null, b: true }],
    };
    const doc = documentFromJsonb(jsonb);
    expect(doc).toEqual({ _id: 'k45', geo: { lat: 1.5, lon: -2 }, n: 32, tags: ['x', { b: true, a: null }], big: 9_007_199_254_740_991 });
    expect(JSON.stringify(doc)).toBe('{"_id":"k45","geo":{"lat":1.5,"lon":-2},"n":32,"tags":["x",{"b":true,"a":null}],"big":9007199254740991}');
  });

  it('refuses what JSON cannot carry (the master then copies through the MongoDB wire)', () => {
    const withDate = { $s: { p: { _id: { t: 'string' }, at: { t: 'date' } }, $k: ['_id', 'at'] }, _id: 'a', at: 1700000000000 };
    expect(() => documentFromJsonb(withDate)).toThrow(UnsupportedDocument);
    const objectId = { $s: { p: { _id: { t: 'objectId' } }, $k: ['_id'] }, _id: '6566f0e0a0a0a0a0a0a0a0a0' };
    expect(() => documentFromJsonb(objectId)).toThrow(UnsupportedDocument);
    const nanDouble = { $s: { p: { _id: { t: 'string' }, x: { t: 'double' } }, $k: ['_id', 'x'] }, _id: 'a', x: 'NaN' };
    expect(() => documentFromJsonb(nanDouble)).toThrow(UnsupportedDocument);
  });
});
