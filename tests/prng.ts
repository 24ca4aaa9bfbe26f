/** mulberry32: a small seeded random generator, so that a failing generated case replays from its seed (one copy, the nemesis'). */
export { seededRandom as rng } from '../tools/nemesis/random.js';
