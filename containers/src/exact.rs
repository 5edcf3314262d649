//! Exact, reproducible summation of floating-point values.
//!
//! [`ExactSum`] adds `f64` and `f32` values without any rounding: every
//! finite value is an integer multiple of 2^-1074 (the smallest `f64`
//! subnormal), so the accumulator is a fixed-point two's-complement integer
//! in that unit. Partial sums merge by integer addition (associative and
//! commutative), and the result is rounded once, to nearest with ties to
//! even. A sum therefore has the same bits whatever the number of
//! processes, the layout, the chunking and the order of the elements.
//!
//! Hot loop: the top 12 bits of an `f64` (sign and exponent) index one of
//! 4096 `u64` buckets, to which its significand with the hidden bit is
//! added: a load, `and`, `or`, add and store, plus a rarely taken branch
//! that moves 2^62 out of a bucket about to overflow. Long slices use two
//! interleaved bucket arrays (2 × 32 KiB, on the stack) so that consecutive
//! elements with the same exponent do not wait for each other, shorter ones
//! one. Zeros and subnormals (exponent 0, where the hidden bit must not
//! count) and infinities and NaN (exponent all ones) are fixed up after
//! each block by a scan of that block, only when their buckets were hit.
//! Every [`BLOCK`] elements and at the end of a call the buckets fold into
//! the fixed-point integer. Short slices go straight into the integer.
//!
//! Faster, and tried first: most blocks of real data span few binades. A
//! block of [`SPLIT_BLOCK`] values whose nonzero magnitudes all lie within
//! 2^31 of the largest is split on a grid fixed by that largest value: each
//! `x` into `hi + lo`, both on grids coarse enough that [`ACC`] running
//! float sums of the `hi` parts, and of the `lo` parts, never round (see
//! [`split_block`]); the 2 × [`ACC`] sums then go into the integer. One
//! pass finds the largest and smallest magnitudes while it splits with the
//! grid of the block before (a second pass only when the grid must change):
//! five vector additions per element, 0.35 ns per `f64` streamed from
//! memory where the buckets take 0.84. A block where the split is not exact
//! (a value far below the largest, or an infinity or NaN) goes through the
//! buckets, and so does the rest of that call.

use hpx_runtime::{Error, Result};

/// 64-bit limbs of the fixed-point accumulator (unit 2^-1074): 2176 bits,
/// room for 2^77 values of magnitude below 2^1024 (2^2098 units) with sign.
const LIMBS: usize = 34;
/// The fraction field of an `f64`.
const FRAC_MASK: u64 = (1 << 52) - 1;
/// The hidden bit of a normal `f64` significand.
const HIDDEN: u64 = 1 << 52;
/// The bits of `-0.0f64`.
const NEG_ZERO: u64 = 1 << 63;
/// Buckets per lane: one per sign and exponent field (`bits >> 52`).
const SLOTS: usize = 1 << 12;
/// The bucket of negative values with exponent field 0 (`-0.0` among them).
const NEG_ZERO_SLOT: usize = 1 << 11;
/// Slices at least this long use [`LANES`] interleaved bucket arrays
/// ("lanes": element `i` goes to lane `i % LANES`), so that consecutive
/// elements with the same exponent do not wait for each other; shorter ones
/// use one, a fraction of the fixed cost of zeroing and folding the buckets.
const MANY_LANES: usize = 4096;
/// Lanes of long slices: 4 ran 4.9-5.4 GB/s where 2 ran 4.3-4.8 and 8 no
/// better than 4 (`array_ops`, one thread).
const LANES: usize = 4;
/// What a bucket that reached 2^63 hands over to the block's chunks. It
/// stays at least 2^62, so a bucket that was hit is never zero.
const SPILL: u64 = 1 << 62;
/// 32-bit chunks of the fixed-point position of a bucket's value.
const CHUNKS: usize = 64;
/// Elements per block, which bounds what a block adds to a chunk (below
/// 2^116).
const BLOCK: usize = 1 << 16;
/// Slices shorter than this are added value by value into the limbs,
/// skipping the fixed cost of the buckets.
const SMALL: usize = 256;
/// Blocks at least this long fold by scanning all the buckets; shorter ones
/// visit the bucket of each of their elements instead, which is cheaper when
/// the elements hit many buckets.
const SCAN: usize = 1024;

/// Values per block of the split path: each of its [`ACC`] running sums
/// adds at most `SPLIT_BLOCK / ACC + ACC` values, below 2^11.
const SPLIT_BLOCK: usize = 1 << 13;
/// Independent running sums per part in the split path (two vectors of
/// four lanes with AVX2), so that additions do not wait for each other.
const ACC: usize = 8;
/// The `hi` grid of a block is 2^(E − HI_BELOW) for a largest magnitude in
/// [2^E, 2^(E+1)): a sum of 2^11 values of magnitude at most 2^(E+1) stays
/// below 2^(E+12), within 53 bits of that grid.
const HI_BELOW: i32 = 40;
/// The `lo` grid lies this far below the `hi` grid: a `lo` part is at most
/// half a `hi` step, and 2^11 of them stay within 53 bits of the `lo` grid.
const LO_BELOW: i32 = 43;

/// Flag: a NaN was added.
const F_NAN: u8 = 1;
/// Flag: `+inf` was added.
const F_POS_INF: u8 = 2;
/// Flag: `-inf` was added.
const F_NEG_INF: u8 = 4;
/// Flag: at least one value was added.
const F_ANY: u8 = 8;
/// Flag: a value other than `-0.0` was added.
const F_NOT_NEG_ZERO: u8 = 16;
/// Every defined flag.
const F_ALL: u8 = F_NAN | F_POS_INF | F_NEG_INF | F_ANY | F_NOT_NEG_ZERO;

/// Bytes before the limbs in [`ExactSum::to_bytes`]: flags, low zero limbs
/// omitted, limbs present.
const HEADER: usize = 3;

/// An exact accumulator of f64/f32 values.
///
/// Holds the exact sum of the finite values added (a 2176-bit fixed-point
/// integer in units of 2^-1074) and flags for NaN, infinities and signed
/// zero. Two accumulators compare equal exactly when they would give the
/// same results for any further additions: the representation is canonical,
/// so equality does not depend on order or chunking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExactSum {
    /// Two's-complement fixed-point value, least significant limb first.
    limbs: [u64; LIMBS],
    /// `F_*` flags.
    flags: u8,
}

impl Default for ExactSum {
    /// The empty sum, as [`ExactSum::new`].
    fn default() -> Self {
        Self::new()
    }
}

/// A binary floating-point format to round to.
struct Format {
    /// Significand bits, the implicit one included.
    precision: u32,
    /// Smallest subnormal of the format, as a power of two of 2^-1074.
    min_shift: usize,
    /// Bits of `+inf` (every exponent bit set).
    inf: u64,
    /// The sign bit.
    sign: u64,
}

/// IEEE binary64.
const F64: Format = Format {
    precision: 53,
    min_shift: 0,
    inf: 0x7ff << 52,
    sign: 1 << 63,
};

/// IEEE binary32: its smallest subnormal 2^-149 is 2^925 units of 2^-1074.
const F32: Format = Format {
    precision: 24,
    min_shift: 1074 - 149,
    inf: 0xff << 23,
    sign: 1 << 31,
};

impl ExactSum {
    /// The empty sum (rounds to `+0.0`).
    pub(crate) fn new() -> ExactSum {
        ExactSum {
            limbs: [0; LIMBS],
            flags: 0,
        }
    }

    /// Adds `xs` exactly.
    #[cfg(test)]
    pub(crate) fn add_f64(&mut self, xs: &[f64]) {
        self.add_values(xs, |x| x, &mut 0);
    }

    /// Adds `xs` exactly (each `f32` widens exactly to `f64`).
    #[cfg(test)]
    pub(crate) fn add_f32(&mut self, xs: &[f32]) {
        self.add_values(xs, f64::from, &mut 0);
    }

    /// [`add_f64`](Self::add_f64) for a run of slices: `top` (0 at first)
    /// carries the magnitude of the last block from one slice to the next,
    /// so that slices of one block each keep the one-pass split path.
    pub(crate) fn add_f64_run(&mut self, xs: &[f64], top: &mut i32) {
        self.add_values(xs, |x| x, top);
    }

    /// [`add_f32`](Self::add_f32) for a run of slices (see
    /// [`add_f64_run`](Self::add_f64_run)).
    pub(crate) fn add_f32_run(&mut self, xs: &[f32], top: &mut i32) {
        self.add_values(xs, f64::from, top);
    }

    /// Adds the values of `other`, as if they had been added to `self`.
    pub(crate) fn merge(&mut self, other: &ExactSum) {
        let mut carry = false;
        for (a, &b) in self.limbs.iter_mut().zip(&other.limbs) {
            let (s, c1) = a.overflowing_add(b);
            let (s, c2) = s.overflowing_add(u64::from(carry));
            *a = s;
            carry = c1 | c2;
        }
        self.flags |= other.flags;
    }

    /// Compact bytes (a few hundred at most) to send to another process.
    ///
    /// Layout: flags, number of low zero limbs omitted, number `n` of limbs
    /// present, then `n` little-endian limbs; the limbs above them are the
    /// sign extension of the last one. At most 3 + 8 × 34 = 275 bytes;
    /// typically 11 to 27 for values of similar magnitudes.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let ext = sign_extension(self.limbs[LIMBS - 1]);
        let mut hi = LIMBS;
        // Drop a top limb while it is the sign extension of the one below
        // (or, for the last one, while it is zero).
        while hi > 0
            && self.limbs[hi - 1] == ext
            && (if hi >= 2 {
                sign_extension(self.limbs[hi - 2]) == ext
            } else {
                ext == 0
            })
        {
            hi -= 1;
        }
        let lo = self.limbs[..hi].iter().take_while(|&&l| l == 0).count();
        let mut out = Vec::with_capacity(HEADER + 8 * (hi - lo));
        // Both counts are at most LIMBS = 34.
        out.extend_from_slice(&[self.flags, lo as u8, (hi - lo) as u8]);
        for limb in &self.limbs[lo..hi] {
            out.extend_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// Inverse of to_bytes; malformed input (any length, any content) gives
    /// Err(hpx_runtime::Error::Codec(String)), never a panic, never an
    /// allocation larger than the fixed accumulator size.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<ExactSum> {
        let [flags, skip, count, ref data @ ..] = *bytes else {
            return Err(codec(format!("{} bytes, too short", bytes.len())));
        };
        if flags & !F_ALL != 0 {
            return Err(codec(format!("unknown flags {flags:#04x}")));
        }
        let (skip, count) = (usize::from(skip), usize::from(count));
        if skip + count > LIMBS {
            return Err(codec(format!("{skip} + {count} limbs, more than {LIMBS}")));
        }
        if data.len() != 8 * count {
            return Err(codec(format!(
                "{} bytes of limbs for {count} limbs",
                data.len()
            )));
        }
        let mut limbs = [0; LIMBS];
        for (limb, chunk) in limbs[skip..].iter_mut().zip(data.chunks_exact(8)) {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(word);
        }
        if count > 0 {
            let ext = sign_extension(limbs[skip + count - 1]);
            limbs[skip + count..].fill(ext);
        }
        Ok(ExactSum { limbs, flags })
    }

    /// The exact sum rounded to nearest-even f64 (overflow to ±inf as IEEE
    /// rounding would give; empty sum = +0.0).
    ///
    /// Any NaN, or both infinities, give NaN; otherwise an infinity gives
    /// itself. An exact zero is `-0.0` only if at least one value was added
    /// and every value added was `-0.0` (as IEEE addition gives), else
    /// `+0.0`.
    pub(crate) fn to_f64(&self) -> f64 {
        f64::from_bits(self.round(&F64))
    }

    /// The exact sum rounded ONCE to nearest-even f32 (not via f64: no double
    /// rounding).
    ///
    /// Special values and zeros as [`ExactSum::to_f64`]; a nonzero sum too
    /// small for `f32` rounds to a zero of its sign.
    pub(crate) fn to_f32(&self) -> f32 {
        // The bits of an f32 format fit in the low 32 bits.
        f32::from_bits(self.round(&F32) as u32)
    }

    /// Adds `xs`, each widened exactly to `f64` by `widen`.
    #[inline(always)]
    fn add_values<T: Copy>(&mut self, xs: &[T], widen: impl Fn(T) -> f64 + Copy, top: &mut i32) {
        if xs.is_empty() {
            return;
        }
        self.flags |= F_ANY;
        if xs.len() < SMALL {
            for &x in xs {
                self.add_one(widen(x).to_bits());
            }
            return;
        }
        let mut rest = xs;
        // `top`: the exponent of the largest magnitude of the block before.
        while rest.len() >= SMALL {
            let (block, after) = rest.split_at(rest.len().min(SPLIT_BLOCK));
            let Some(split) = split_block(block, widen, top) else {
                break;
            };
            self.flags |= split.flags;
            for part in split.hi.into_iter().chain(split.lo) {
                if part != 0.0 {
                    self.add_one(part.to_bits());
                }
            }
            rest = after;
        }
        if rest.len() < SMALL {
            for &x in rest {
                self.add_one(widen(x).to_bits());
            }
        } else if rest.len() < MANY_LANES {
            self.add_buckets::<T, 1>(rest, widen);
        } else {
            self.add_buckets::<T, LANES>(rest, widen);
        }
    }

    /// Adds `xs` through `L` lanes of buckets, block by block.
    fn add_buckets<T: Copy, const L: usize>(&mut self, xs: &[T], widen: impl Fn(T) -> f64 + Copy) {
        // Zeroed once; each fold zeroes what the block touched.
        let mut lanes = [[0u64; SLOTS]; L];
        for block in xs.chunks(BLOCK) {
            let mut chunks = [0i128; CHUNKS];
            let mut groups = block.chunks_exact(L);
            for group in &mut groups {
                for (lane, &x) in lanes.iter_mut().zip(group) {
                    accumulate(lane, widen(x).to_bits(), &mut chunks);
                }
            }
            for (lane, &x) in lanes.iter_mut().zip(groups.remainder()) {
                accumulate(lane, widen(x).to_bits(), &mut chunks);
            }
            self.fold(&mut lanes, &mut chunks, block, widen);
        }
    }

    /// Adds one value, given by its `f64` bits, directly into the limbs.
    fn add_one(&mut self, bits: u64) {
        if bits != NEG_ZERO {
            self.flags |= F_NOT_NEG_ZERO;
        }
        let e = (bits >> 52) & 0x7ff;
        if e == 0x7ff {
            self.flags |= special_flag(bits);
            return;
        }
        let normal = u64::from(e != 0);
        let m = (bits & FRAC_MASK) | normal << 52;
        if m == 0 {
            return;
        }
        // The value is m × 2^p units: p = max(e, 1) − 1.
        let p = e - normal;
        let wide = u128::from(m) << (p & 63);
        let (wide, ext) = if bits >> 63 != 0 {
            (wide.wrapping_neg(), u64::MAX)
        } else {
            (wide, 0)
        };
        // Bits 0..64 of the shifted value, then bits 64..128.
        let (lo, hi) = (wide as u64, (wide >> 64) as u64);
        let mut i = (p >> 6) as usize;
        let mut carry = false;
        for word in [lo, hi] {
            // p ≤ 2045, so i + 1 ≤ 32 < LIMBS; `get_mut` only guards it.
            if let Some(limb) = self.limbs.get_mut(i) {
                let (s, c1) = limb.overflowing_add(word);
                let (s, c2) = s.overflowing_add(u64::from(carry));
                *limb = s;
                carry = c1 | c2;
            }
            i += 1;
        }
        // The sign extension `ext` with carry leaves a limb unchanged (and
        // the carry too) once the carry is 0 for `ext = 0`, 1 for `ext = !0`.
        let stop = ext != 0;
        while carry != stop && i < LIMBS {
            let (s, c1) = self.limbs[i].overflowing_add(ext);
            let (s, c2) = s.overflowing_add(u64::from(carry));
            self.limbs[i] = s;
            carry = c1 | c2;
            i += 1;
        }
    }

    /// Moves the buckets filled from `block` (zeroing them) and the spills
    /// in `chunks` into the limbs, and sets the flags of the block.
    fn fold<T: Copy, const L: usize>(
        &mut self,
        lanes: &mut [[u64; SLOTS]; L],
        chunks: &mut [i128; CHUNKS],
        block: &[T],
        widen: impl Fn(T) -> f64 + Copy,
    ) {
        /// Buckets tested for zero at once: same sign, exponents `16g..16g + 16`.
        const GROUP: usize = 16;
        /// The buckets of infinities and NaN.
        const SPECIAL_SLOTS: [usize; 2] = [0x7ff, 0xfff];
        let hit = |lanes: &[[u64; SLOTS]; L], slots: std::ops::Range<usize>| {
            lanes
                .iter()
                .flat_map(|lane| &lane[slots.clone()])
                .fold(0, |acc, &c| acc | c)
                != 0
        };
        let zero_exponent = hit(lanes, 0..1) || hit(lanes, NEG_ZERO_SLOT..NEG_ZERO_SLOT + 1);
        let special = SPECIAL_SLOTS.iter().any(|&slot| hit(lanes, slot..slot + 1));
        // Infinities and NaN are only flags, set below.
        for lane in lanes.iter_mut() {
            for slot in SPECIAL_SLOTS {
                lane[slot] = 0;
            }
        }
        // Whether a bucket other than that of -0.0 was hit.
        let mut not_neg_zero = special;
        if block.len() < SCAN {
            // Visit the buckets of the block's elements.
            for &x in block {
                let slot = (widen(x).to_bits() >> 52) as usize;
                let count = lanes.iter().map(|lane| u128::from(lane[slot])).sum();
                // Nonzero at the first visit of a bucket (but for the
                // infinities and NaN, already handled).
                if count != 0 {
                    for lane in lanes.iter_mut() {
                        lane[slot] = 0;
                    }
                    not_neg_zero |= slot != NEG_ZERO_SLOT;
                    add_to_chunks(chunks, slot, count);
                }
            }
        } else {
            // Visit every group of buckets.
            not_neg_zero |= hit(lanes, NEG_ZERO_SLOT + 1..NEG_ZERO_SLOT + GROUP);
            for start in (0..SLOTS).step_by(GROUP) {
                if !hit(lanes, start..start + GROUP) {
                    continue;
                }
                not_neg_zero |= start != NEG_ZERO_SLOT;
                // Σ count × 2^(exponent − first exponent) (below 2^64 × 2^16),
                // by Horner from the top; exponents 0 and 1 share a position.
                let mut group = 0u128;
                for slot in (start..start + GROUP).rev() {
                    let mut count = 0u128;
                    for lane in lanes.iter_mut() {
                        count += u128::from(lane[slot]);
                        lane[slot] = 0;
                    }
                    group = if slot & 0x7ff == 0 {
                        group + count
                    } else {
                        (group << 1) + count
                    };
                }
                add_to_chunks(chunks, start, group);
            }
        }
        if zero_exponent {
            // Zeros and subnormals were added with a hidden bit (2^52 units
            // each) they do not have: count them and take it back.
            let (mut positive, mut negative) = (0usize, 0usize);
            for &x in block {
                let bits = widen(x).to_bits();
                let top = bits >> 52;
                positive += usize::from(top == 0);
                negative += usize::from(top == 0x800);
                not_neg_zero |= bits != NEG_ZERO;
            }
            // Counts below 2^16 (BLOCK): exact.
            chunks[0] -= (positive as i128 - negative as i128) << 52;
        }
        if special {
            for &x in block {
                let bits = widen(x).to_bits();
                if (bits >> 52) & 0x7ff == 0x7ff {
                    self.flags |= special_flag(bits);
                }
            }
        }
        if not_neg_zero {
            self.flags |= F_NOT_NEG_ZERO;
        }
        self.add_chunks(chunks);
    }

    /// Adds Σ `chunks[k]` × 2^(32k) units to the limbs, propagating carries
    /// in one pass.
    fn add_chunks(&mut self, chunks: &[i128; CHUNKS]) {
        let Some(first) = chunks.iter().position(|&c| c != 0) else {
            return;
        };
        let chunk = |k: usize| chunks.get(k).copied().unwrap_or(0);
        // |chunk| < 2^116 and the limb halves are below 2^32, so the carry
        // stays below 2^85 in magnitude.
        let mut carry = 0i128;
        for l in first / 2..LIMBS {
            if 2 * l >= CHUNKS && carry == 0 {
                break;
            }
            let limb = self.limbs[l];
            let low = carry + i128::from(limb as u32) + chunk(2 * l);
            let high = (low >> 32) + i128::from(limb >> 32) + chunk(2 * l + 1);
            self.limbs[l] = (high as u64) << 32 | (low as u64 & 0xffff_ffff);
            carry = high >> 32;
        }
    }

    /// The correctly rounded result in `format`, as that format's bits in
    /// the low bits of a `u64`.
    fn round(&self, format: &Format) -> u64 {
        let nan = format.inf | 1 << (format.precision - 2);
        let infinities = self.flags & (F_POS_INF | F_NEG_INF);
        if self.flags & F_NAN != 0 || infinities == F_POS_INF | F_NEG_INF {
            return nan;
        }
        if infinities == F_POS_INF {
            return format.inf;
        }
        if infinities == F_NEG_INF {
            return format.sign | format.inf;
        }
        let negative = self.limbs[LIMBS - 1] >> 63 != 0;
        let magnitude = if negative {
            negate(&self.limbs)
        } else {
            self.limbs
        };
        let sign = if negative { format.sign } else { 0 };
        let Some(top) = magnitude.iter().rposition(|&l| l != 0) else {
            return if self.flags & (F_ANY | F_NOT_NEG_ZERO) == F_ANY {
                format.sign
            } else {
                0
            };
        };
        let bit_len = 64 * top + 64 - magnitude[top].leading_zeros() as usize;
        // Keep `precision` bits, but no bit below the format's subnormal
        // quantum.
        let shift = bit_len
            .saturating_sub(format.precision as usize)
            .max(format.min_shift);
        let mut mantissa = bits_from(&magnitude, shift);
        if shift > 0 && bit(&magnitude, shift - 1) {
            let sticky = any_below(&magnitude, shift - 1);
            if sticky || mantissa & 1 != 0 {
                mantissa += 1;
            }
        }
        // Exponent field (shift − min_shift) + 1 when the mantissa has its
        // top bit, 0 for a subnormal; a mantissa rounded up to 2^precision
        // carries into the exponent. Both terms are below 2^63.
        let biased = (((shift - format.min_shift) as u64) << (format.precision - 1)) + mantissa;
        sign | biased.min(format.inf)
    }
}

/// A block's values as exact running sums (see [`split_block`]).
struct Split {
    /// Sums of the parts on the coarse grid.
    hi: [f64; ACC],
    /// Sums of the remainders, on the fine grid.
    lo: [f64; ACC],
    /// The flags the block sets besides [`F_ANY`].
    flags: u8,
}

/// What one pass of [`split_pass`] found.
enum Pass {
    /// The block, split exactly, and the exponent of its largest magnitude.
    Split(Split, i32),
    /// Not exact with the grid tried: try the one of this exponent.
    Retry(i32),
    /// Not exact with any grid.
    Fail,
}

/// Splits every value `x` of `block` (at most [`SPLIT_BLOCK`] long) into
/// `hi + lo` exactly and sums each part in [`ACC`] running sums without any
/// rounding; `None` where that cannot be done exactly (a nonzero magnitude
/// below 2^-31 of the largest, an infinity or NaN, or a largest magnitude
/// near the ends of the `f64` range): the caller then adds the block
/// another way.
///
/// `guess` is the exponent E of the largest magnitude, 2^E ≤ |x| < 2^(E+1),
/// as the previous block had it (a block of similar values is split in one
/// pass, with the grids of E or of a smaller block maximum); it is updated
/// to this block's. With the grid 2^g,
/// g = E − [`HI_BELOW`]: `hi = (x + C) − C` for C = 1.5 × 2^(g+52) is `x`
/// rounded to the grid, exactly (x + C stays in [2^(g+52), 2^(g+53)), whose
/// spacing is 2^g); `lo = x − hi` is exact, at most 2^(g−1), and a multiple
/// of the grid 2^(g − [`LO_BELOW`]) when every nonzero `|x|` is at least
/// 2^(E−31). Every running sum is then a multiple of its grid and below
/// 2^53 of its steps (see [`HI_BELOW`], [`LO_BELOW`]), so no addition
/// rounds. The pass checks both bounds on the way (the largest and the
/// smallest nonzero magnitude) and is repeated with the right E when the
/// guess was wrong.
fn split_block<T: Copy>(
    block: &[T],
    widen: impl Fn(T) -> f64 + Copy,
    guess: &mut i32,
) -> Option<Split> {
    let pass = |e: i32| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, checked just above.
                return unsafe { split_pass_avx512(block, widen, e) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                return unsafe { split_pass_avx2(block, widen, e) };
            }
        }
        split_pass(block, widen, e)
    };
    let pass = match pass(*guess) {
        Pass::Retry(e) => pass(e),
        done => done,
    };
    match pass {
        Pass::Split(split, top) => {
            *guess = top;
            Some(split)
        }
        Pass::Retry(_) | Pass::Fail => None,
    }
}

/// [`split_pass`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn split_pass_avx512<T: Copy>(block: &[T], widen: impl Fn(T) -> f64 + Copy, e: i32) -> Pass {
    split_pass(block, widen, e)
}

/// [`split_pass`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn split_pass_avx2<T: Copy>(block: &[T], widen: impl Fn(T) -> f64 + Copy, e: i32) -> Pass {
    split_pass(block, widen, e)
}

/// One pass of [`split_block`] with the grids of exponent `e`.
#[inline(always)]
fn split_pass<T: Copy>(block: &[T], widen: impl Fn(T) -> f64 + Copy, e: i32) -> Pass {
    /// The bits of a magnitude with every bit but the sign.
    const MAGNITUDE: u64 = !NEG_ZERO;
    /// The bits of +inf.
    const INF: u64 = 0x7ff << 52;
    // Both grids' constants must be normal numbers (so the sums, below
    // 2^(e+12), are finite too); outside that, use the grids of 1.0 (the
    // checks below then ask for the right exponent, or fail).
    let usable = |e: i32| (-1074 + HI_BELOW + LO_BELOW..=1023 - 52 + HI_BELOW).contains(&e);
    let e = if usable(e) { e } else { 0 };
    let constant = |grid: i32| f64::from_bits(((grid + 52 + 1023) as u64) << 52 | 1 << 51);
    let c = constant(e - HI_BELOW);
    let mut hi = [0.0f64; ACC];
    let mut lo = [0.0f64; ACC];
    // The largest magnitude's bits, and the smallest nonzero one's minus 1
    // (a zero wraps to the largest).
    let mut largest = [0u64; ACC];
    let mut smallest = [u64::MAX; ACC];
    let step = |h: &mut f64, l: &mut f64, big: &mut u64, small: &mut u64, x: f64| {
        let x_hi = (x + c) - c;
        *h += x_hi;
        *l += x - x_hi;
        let bits = x.to_bits() & MAGNITUDE;
        *big = (*big).max(bits);
        *small = (*small).min(bits.wrapping_sub(1));
    };
    let groups = block.chunks_exact(ACC);
    let tail = groups.remainder();
    for group in groups {
        for ((((h, l), big), small), &x) in hi
            .iter_mut()
            .zip(&mut lo)
            .zip(&mut largest)
            .zip(&mut smallest)
            .zip(group)
        {
            step(h, l, big, small, widen(x));
        }
    }
    for ((((h, l), big), small), &x) in hi
        .iter_mut()
        .zip(&mut lo)
        .zip(&mut largest)
        .zip(&mut smallest)
        .zip(tail)
    {
        step(h, l, big, small, widen(x));
    }
    let largest = largest.into_iter().max().unwrap_or(0);
    let smallest = smallest.into_iter().min().unwrap_or(u64::MAX);
    if largest >= INF {
        return Pass::Fail;
    }
    if largest == 0 {
        // Zeros only: the flag says whether one was +0.0.
        let positive = block.iter().any(|&x| widen(x).to_bits() == 0);
        let flags = if positive { F_NOT_NEG_ZERO } else { 0 };
        let split = Split {
            hi: [0.0; ACC],
            lo: [0.0; ACC],
            flags,
        };
        return Pass::Split(split, e);
    }
    let top = (largest >> 52) as i32 - 1023;
    // The smallest magnitude that the grids keep exact: 2^(e − 31).
    let floor = ((e - HI_BELOW - LO_BELOW + 52 + 1023) as u64) << 52;
    if top <= e && smallest >= floor - 1 {
        let split = Split {
            hi,
            lo,
            flags: F_NOT_NEG_ZERO,
        };
        Pass::Split(split, top)
    } else if top != e && usable(top) {
        Pass::Retry(top)
    } else {
        Pass::Fail
    }
}

/// Adds one value, given by its `f64` bits, to its bucket in `lane`, with
/// the hidden bit whatever the exponent (the fold corrects exponent 0).
#[inline(always)]
fn accumulate(lane: &mut [u64; SLOTS], bits: u64, chunks: &mut [i128; CHUNKS]) {
    // Below 4096: no bounds check.
    let slot = (bits >> 52) as usize;
    let count = lane[slot].wrapping_add((bits & FRAC_MASK) | HIDDEN);
    lane[slot] = count;
    // Below 2^63 + 2^53 (it was below 2^63): no wrap.
    if count >> 63 != 0 {
        spill(&mut lane[slot], slot, chunks);
    }
}

/// Moves [`SPILL`] out of the bucket `slot` into `chunks` (infinities and
/// NaN are only flags: their buckets only need to stay nonzero).
#[cold]
#[inline(never)]
fn spill(count: &mut u64, slot: usize, chunks: &mut [i128; CHUNKS]) {
    *count -= SPILL;
    if slot & 0x7ff != 0x7ff {
        add_to_chunks(chunks, slot, u128::from(SPILL));
    }
}

/// Adds `count` times the unit of bucket `slot` (sign and exponent field
/// `e`: 2^(max(e, 1) − 1) units of 2^-1074) to `chunks`; `count` < 2^81.
#[inline(always)]
fn add_to_chunks(chunks: &mut [i128; CHUNKS], slot: usize, count: u128) {
    let e = slot & 0x7ff;
    let p = e.max(1) - 1;
    // Below 2^81 × 2^31: fits, and a block adds less than 2^116 to a chunk
    // (at most 6 groups, below 2^112 each, and spills below 2^100 in all).
    let value = (count as i128) << (p % 32);
    // All ones for a negative bucket: (value ^ sign) − sign = −value.
    let sign = -((slot >> 11) as i128 & 1);
    let chunk = &mut chunks[(p / 32) % CHUNKS];
    *chunk += (value ^ sign) - sign;
}

/// The flag of a value whose exponent field is all ones (infinity or NaN).
#[cold]
fn special_flag(bits: u64) -> u8 {
    if bits & FRAC_MASK != 0 {
        F_NAN
    } else if bits >> 63 != 0 {
        F_NEG_INF
    } else {
        F_POS_INF
    }
}

/// The limb that sign-extends `limb`: all ones if its top bit is set.
fn sign_extension(limb: u64) -> u64 {
    0u64.wrapping_sub(limb >> 63)
}

/// The two's-complement negation of `limbs`.
fn negate(limbs: &[u64; LIMBS]) -> [u64; LIMBS] {
    let mut out = [0; LIMBS];
    let mut carry = true;
    for (o, &l) in out.iter_mut().zip(limbs) {
        let (s, c) = (!l).overflowing_add(u64::from(carry));
        *o = s;
        carry = c;
    }
    out
}

/// Bits `shift..shift + 64` of `limbs` (zeros above the top).
fn bits_from(limbs: &[u64; LIMBS], shift: usize) -> u64 {
    let (i, offset) = (shift / 64, shift % 64);
    let low = limbs.get(i).copied().unwrap_or(0) >> offset;
    if offset == 0 {
        low
    } else {
        low | limbs.get(i + 1).copied().unwrap_or(0) << (64 - offset)
    }
}

/// Bit `index` of `limbs`.
fn bit(limbs: &[u64; LIMBS], index: usize) -> bool {
    limbs
        .get(index / 64)
        .is_some_and(|l| l >> (index % 64) & 1 != 0)
}

/// Whether any bit below `index` is set.
fn any_below(limbs: &[u64; LIMBS], index: usize) -> bool {
    let (i, offset) = (index / 64, index % 64);
    let partial = limbs
        .get(i)
        .is_some_and(|l| l & ((1u64 << offset) - 1) != 0);
    partial || limbs[..i.min(LIMBS)].iter().any(|&l| l != 0)
}

/// A codec error.
fn codec(message: String) -> Error {
    Error::Codec(format!("exact sum: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ---- Independent reference: exact big integer, rounding by search ----

    /// Words of the reference integer: 2304 bits.
    const WORDS: usize = 72;

    /// Two's-complement integer of 32-bit words, unit 2^-1074.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    struct Big([u32; WORDS]);

    impl Big {
        /// Zero.
        fn zero() -> Big {
            Big([0; WORDS])
        }

        /// 2^`bit` units.
        fn pow2(bit: usize) -> Big {
            let mut b = Big::zero();
            b.0[bit / 32] = 1 << (bit % 32);
            b
        }

        /// The exact value of a finite f64, bit by bit.
        fn of(x: f64) -> Big {
            assert!(x.is_finite());
            let bits = x.to_bits();
            let e = ((bits >> 52) & 0x7ff) as usize;
            let frac = bits & FRAC_MASK;
            let (m, p) = if e == 0 {
                (frac, 0)
            } else {
                (frac | 1 << 52, e - 1)
            };
            let mut b = Big::zero();
            for i in 0..53 {
                if m >> i & 1 == 1 {
                    let pos = p + i;
                    b.0[pos / 32] |= 1 << (pos % 32);
                }
            }
            if x.is_sign_negative() {
                b.neg()
            } else {
                b
            }
        }

        /// Sum.
        fn add(&self, other: &Big) -> Big {
            let mut out = Big::zero();
            let mut carry = 0u64;
            for i in 0..WORDS {
                let s = u64::from(self.0[i]) + u64::from(other.0[i]) + carry;
                out.0[i] = s as u32;
                carry = s >> 32;
            }
            out
        }

        /// Negation.
        fn neg(&self) -> Big {
            let mut inverted = Big::zero();
            for i in 0..WORDS {
                inverted.0[i] = !self.0[i];
            }
            inverted.add(&Big::pow2(0))
        }

        /// Whether negative.
        fn is_negative(&self) -> bool {
            self.0[WORDS - 1] >> 31 == 1
        }

        /// Compares.
        fn cmp(&self, other: &Big) -> std::cmp::Ordering {
            let d = self.add(&other.neg());
            if d.is_negative() {
                std::cmp::Ordering::Less
            } else if d == Big::zero() {
                std::cmp::Ordering::Equal
            } else {
                std::cmp::Ordering::Greater
            }
        }
    }

    /// Correctly rounds the exact sum of `xs` (all finite or special) to a
    /// format whose positive finite bit patterns are `0..inf`, with
    /// `value(bits)` the exact value of a pattern and `inf_value` the value
    /// the infinity pattern stands for (2^emax+1, even mantissa). Returns the
    /// magnitude bits and the sign.
    fn reference(
        xs: &[f64],
        inf: u64,
        inf_value: Big,
        value: impl Fn(u64) -> Big,
    ) -> Option<(bool, u64)> {
        if xs.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let sum = xs.iter().fold(Big::zero(), |s, &x| s.add(&Big::of(x)));
        let negative = sum.is_negative();
        let a = if negative { sum.neg() } else { sum };
        if a == Big::zero() {
            let all_neg_zero = !xs.is_empty() && xs.iter().all(|x| x.to_bits() == NEG_ZERO);
            return Some((all_neg_zero, 0));
        }
        // Largest pattern lo with value(lo) <= a < value(hi), hi = lo + 1.
        let (mut lo, mut hi) = (0u64, inf);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if value(mid).cmp(&a) != std::cmp::Ordering::Greater {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let v_hi = if hi == inf { inf_value } else { value(hi) };
        let pick = match a.add(&a).cmp(&value(lo).add(&v_hi)) {
            std::cmp::Ordering::Less => lo,
            std::cmp::Ordering::Greater => hi,
            std::cmp::Ordering::Equal => {
                if lo % 2 == 0 {
                    lo
                } else {
                    hi
                }
            }
        };
        Some((negative, pick))
    }

    /// Reference f64 sum of finite values.
    fn ref_f64(xs: &[f64]) -> Option<f64> {
        let (negative, bits) = reference(xs, F64.inf, Big::pow2(1024 + 1074), |b| {
            Big::of(f64::from_bits(b))
        })?;
        Some(f64::from_bits(bits | u64::from(negative) << 63))
    }

    /// Reference f32 rounding of the exact sum of finite f64 values.
    fn ref_f32(xs: &[f64]) -> Option<f32> {
        let (negative, bits) = reference(xs, F32.inf, Big::pow2(128 + 1074), |b| {
            Big::of(f64::from(f32::from_bits(b as u32)))
        })?;
        Some(f32::from_bits(bits as u32 | u32::from(negative) << 31))
    }

    /// `ExactSum` of `xs` as one call.
    fn exact(xs: &[f64]) -> ExactSum {
        let mut s = ExactSum::new();
        s.add_f64(xs);
        s
    }

    /// Checks `xs` against the reference, as one call and value by value.
    fn check(xs: &[f64]) {
        let expected = ref_f64(xs).expect("finite inputs");
        let expected32 = ref_f32(xs).expect("finite inputs");
        let whole = exact(xs);
        let mut one_by_one = ExactSum::new();
        for x in xs {
            one_by_one.add_f64(std::slice::from_ref(x));
        }
        assert_eq!(whole, one_by_one, "{xs:?}");
        assert_eq!(
            whole.to_f64().to_bits(),
            expected.to_bits(),
            "{xs:?}: {} vs {expected}",
            whole.to_f64()
        );
        assert_eq!(
            whole.to_f32().to_bits(),
            expected32.to_bits(),
            "{xs:?}: {} vs {expected32}",
            whole.to_f32()
        );
    }

    /// The bits of the f64 sum of `xs`.
    fn sum_bits(xs: &[f64]) -> u64 {
        exact(xs).to_f64().to_bits()
    }

    /// 2^e as f64.
    fn p2(e: i32) -> f64 {
        2f64.powi(e)
    }

    // ---- Fixed cases ----

    #[test]
    fn zeros_and_signs() {
        assert_eq!(ExactSum::new().to_f64().to_bits(), 0);
        assert_eq!(ExactSum::default().to_f32().to_bits(), 0);
        assert_eq!(sum_bits(&[-0.0]), NEG_ZERO);
        assert_eq!(sum_bits(&[-0.0; 100]), NEG_ZERO);
        assert_eq!(sum_bits(&[-0.0, 0.0]), 0);
        assert_eq!(sum_bits(&[1.0, -1.0]), 0);
        assert_eq!(sum_bits(&[-1.0, 1.0, -0.0]), 0);
        let mut many = vec![-0.0; 100];
        many[77] = 0.0;
        assert_eq!(sum_bits(&many), 0);
        assert_eq!(exact(&[-0.0]).to_f32().to_bits(), 1 << 31);
        let mut s = ExactSum::new();
        s.add_f32(&[-0.0; 40]);
        assert_eq!(s.to_f32().to_bits(), 1 << 31);
        s.merge(&exact(&[0.0]));
        assert_eq!(s.to_f64().to_bits(), 0);
        for xs in [&[-0.0][..], &[-0.0, 0.0], &[], &[3.0, -3.0]] {
            check(xs);
        }
    }

    #[test]
    fn cancellation() {
        assert_eq!(exact(&[1e100, 1.0, -1e100]).to_f64(), 1.0);
        assert_eq!(exact(&[1e308, 1e308, -1e308]).to_f64(), 1e308);
        assert_eq!(exact(&[f64::MAX, f64::MAX, -f64::MAX]).to_f64(), f64::MAX);
        let mut xs = vec![1.0];
        xs.extend([1e-16; 10]);
        check(&xs);
        let big: Vec<f64> = (0..100)
            .flat_map(|i| [1e300 / f64::from(i + 1), 1e-300, -1e300 / f64::from(i + 1)])
            .collect();
        assert_eq!(exact(&big).to_f64(), 100.0 * 1e-300);
        check(&big);
        check(&[0.1, 0.2, -0.3]);
        check(&[1e16, 1.0, -1e16, 1e-20, 3.5, -2.25]);
    }

    #[test]
    fn ties_round_to_even() {
        let half_ulp = p2(-53);
        assert_eq!(exact(&[1.0, half_ulp]).to_f64(), 1.0);
        assert_eq!(exact(&[1.0, half_ulp, p2(-1074)]).to_f64(), 1.0 + p2(-52));
        let odd = 1.0 + p2(-52);
        assert_eq!(exact(&[odd, half_ulp]).to_f64(), 1.0 + p2(-51));
        assert_eq!(exact(&[-odd, -half_ulp]).to_f64(), -(1.0 + p2(-51)));
        assert_eq!(exact(&[1.0, half_ulp, -p2(-1074)]).to_f64(), 1.0);
        // Many small halves make a tie only together.
        let mut xs = vec![1.0];
        xs.extend([p2(-60); 128]);
        assert_eq!(exact(&xs).to_f64(), 1.0);
        xs.push(p2(-60));
        assert_eq!(exact(&xs).to_f64(), 1.0 + p2(-52));
        check(&xs);
    }

    #[test]
    fn subnormals() {
        let tiny = p2(-1074);
        assert_eq!(exact(&[tiny; 3]).to_f64(), 3.0 * tiny);
        assert_eq!(
            exact(&[f64::MIN_POSITIVE, -tiny]).to_f64(),
            f64::MIN_POSITIVE - tiny
        );
        assert_eq!(
            exact(&[f64::MIN_POSITIVE - tiny, tiny]).to_f64(),
            f64::MIN_POSITIVE
        );
        assert_eq!(exact(&[-tiny, tiny, -tiny]).to_f64(), -tiny);
        let xs: Vec<f64> = (0..200)
            .map(|i| {
                f64::from_bits(i * 0x0000_1234_5678_9abc) * if i % 3 == 0 { -1.0 } else { 1.0 }
            })
            .collect();
        check(&xs);
    }

    #[test]
    fn overflow() {
        let ulp = p2(971);
        assert_eq!(exact(&[f64::MAX, f64::MAX]).to_f64(), f64::INFINITY);
        assert_eq!(exact(&[-f64::MAX, -f64::MAX]).to_f64(), f64::NEG_INFINITY);
        // MAX has an odd mantissa: MAX + ulp/2 ties to 2^1024, i.e. inf.
        assert_eq!(exact(&[f64::MAX, ulp / 2.0]).to_f64(), f64::INFINITY);
        assert_eq!(exact(&[f64::MAX, ulp / 2.0, -p2(-1074)]).to_f64(), f64::MAX);
        assert_eq!(exact(&[f64::MAX / 2.0, f64::MAX / 2.0]).to_f64(), f64::MAX);
        let mut xs = vec![f64::MAX; 1000];
        xs.extend(vec![-f64::MAX; 999]);
        assert_eq!(exact(&xs).to_f64(), f64::MAX);
        check(&xs);
        check(&[f64::MAX, ulp / 2.0]);
        check(&[f64::MAX, ulp / 4.0, ulp / 4.0, -p2(-1000)]);
        check(&[-f64::MAX, -ulp / 2.0, p2(-1074)]);
        check(&[f64::MAX, ulp / 4.0]);
    }

    #[test]
    fn f32_rounds_once() {
        // 1 + 2^-24 + 2^-80: via f64 the 2^-80 is lost and the f32 tie
        // rounds down to 1; rounding once gives 1 + 2^-23.
        let xs = [1.0f32, 2f32.powi(-24), 2f32.powi(-80)];
        let mut s = ExactSum::new();
        s.add_f32(&xs);
        assert_eq!(s.to_f64() as f32, 1.0);
        assert_eq!(s.to_f32(), 1.0 + 2f32.powi(-23));
        let mut neg = ExactSum::new();
        neg.add_f32(&xs.map(|x| -x));
        assert_eq!(neg.to_f32(), -(1.0 + 2f32.powi(-23)));
        // Exact tie stays even.
        let mut tie = ExactSum::new();
        tie.add_f32(&[1.0, 2f32.powi(-24)]);
        assert_eq!(tie.to_f32(), 1.0);
        // Overflow, tie at MAX + ulp/2.
        let mut over = ExactSum::new();
        over.add_f32(&[f32::MAX, 2f32.powi(103)]);
        assert_eq!(over.to_f32(), f32::INFINITY);
        over.add_f64(&[-p2(-1074)]);
        assert_eq!(over.to_f32(), f32::MAX);
        // Below the f32 range: a zero of the sum's sign, or its subnormal.
        assert_eq!(exact(&[p2(-150)]).to_f32().to_bits(), 0);
        assert_eq!(exact(&[-p2(-151)]).to_f32().to_bits(), 1 << 31);
        assert_eq!(exact(&[p2(-150), p2(-1074)]).to_f32(), 2f32.powi(-149));
        assert_eq!(exact(&[p2(-149), p2(-150)]).to_f32(), 2f32.powi(-148));
        assert_eq!(exact(&[3.0 * p2(-150)]).to_f32(), 2f32.powi(-148));
        for xs in [
            &[1.0, p2(-24), p2(-80)][..],
            &[p2(-150)],
            &[-p2(-150), -p2(-1074)],
            &[f64::from(f32::MIN_POSITIVE), -p2(-149), -p2(-151)],
            &[1e39, -1e38],
        ] {
            check(xs);
        }
        let mut many = ExactSum::new();
        let values: Vec<f32> = (0..1000).map(|i| (i as f32).sqrt() * 1e-3).collect();
        many.add_f32(&values);
        let wide: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
        assert_eq!(many, exact(&wide));
        assert_eq!(Some(many.to_f32()), ref_f32(&wide));
    }

    #[test]
    fn specials() {
        let nan = |s: &ExactSum| s.to_f64().is_nan() && s.to_f32().is_nan();
        assert!(nan(&exact(&[1.0, f64::NAN])));
        assert!(nan(&exact(&[f64::INFINITY, f64::NEG_INFINITY])));
        assert_eq!(
            exact(&[f64::INFINITY, -f64::MAX, -f64::MAX]).to_f64(),
            f64::INFINITY
        );
        assert_eq!(exact(&[f64::NEG_INFINITY, 1.0]).to_f64(), f64::NEG_INFINITY);
        assert_eq!(exact(&[f64::NEG_INFINITY, 1.0]).to_f32(), f32::NEG_INFINITY);
        let mut long = vec![1.0; 1000];
        long[500] = f64::INFINITY;
        assert_eq!(exact(&long).to_f64(), f64::INFINITY);
        long[600] = f64::NEG_INFINITY;
        assert!(nan(&exact(&long)));
        let mut f = ExactSum::new();
        f.add_f32(&[1.0, f32::NAN]);
        assert!(nan(&f));
        // Flags survive merge and bytes.
        let mut a = exact(&[f64::INFINITY]);
        let b = ExactSum::from_bytes(&exact(&[f64::NEG_INFINITY, 2.0]).to_bytes())
            .expect("valid bytes");
        assert_eq!(b.to_f64(), f64::NEG_INFINITY);
        a.merge(&b);
        assert!(nan(
            &ExactSum::from_bytes(&a.to_bytes()).expect("valid bytes")
        ));
        let mut n = ExactSum::from_bytes(&exact(&[f64::NAN]).to_bytes()).expect("valid bytes");
        assert!(nan(&n));
        n.merge(&exact(&[1.0]));
        assert!(nan(&n));
    }

    #[test]
    fn long_inputs_cross_blocks() {
        let mut rng = Rng(7);
        let xs: Vec<f64> = (0..BLOCK * 2 + 1234).map(|_| rng.mixed()).collect();
        let whole = exact(&xs);
        let mut pieces = ExactSum::new();
        for piece in xs.chunks(999) {
            pieces.add_f64(piece);
        }
        assert_eq!(whole, pieces);
        assert_eq!(Some(whole.to_f64()), ref_f64(&xs));
        let uniform: Vec<f64> = (0..BLOCK + 3).map(|_| rng.unit()).collect();
        check(&uniform);
    }

    #[test]
    fn bytes_round_trip_and_size() {
        let mut rng = Rng(3);
        for n in [0usize, 1, 5, 40, 300] {
            let xs: Vec<f64> = (0..n).map(|_| rng.mixed()).collect();
            let s = exact(&xs);
            let bytes = s.to_bytes();
            assert!(bytes.len() <= HEADER + 8 * LIMBS);
            assert_eq!(ExactSum::from_bytes(&bytes), Ok(s));
        }
        assert_eq!(ExactSum::new().to_bytes(), [0, 0, 0]);
        assert_eq!(exact(&[1.0, 2.0, 0.5]).to_bytes().len(), HEADER + 8);
        assert_eq!(exact(&[-1.0]).to_bytes().len(), HEADER + 8);
        let extremes = [
            exact(&[-f64::MAX; 100]),
            exact(&[f64::MAX; 100]),
            exact(&[-p2(-1074)]),
            exact(&[p2(-1074), -f64::MAX]),
        ];
        for s in extremes {
            assert_eq!(ExactSum::from_bytes(&s.to_bytes()), Ok(s));
        }
    }

    #[test]
    fn from_bytes_rejects_malformed() {
        let good = exact(&[1e300, -3.5, 1e-300]).to_bytes();
        for len in 0..good.len() {
            assert!(ExactSum::from_bytes(&good[..len]).is_err(), "prefix {len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(ExactSum::from_bytes(&longer).is_err());
        let mut flags = good.clone();
        flags[0] |= 0x80;
        assert!(ExactSum::from_bytes(&flags).is_err());
        let mut too_many = vec![0, 30, 5];
        too_many.extend([0; 40]);
        assert!(matches!(
            ExactSum::from_bytes(&too_many),
            Err(Error::Codec(_))
        ));
        let full = vec![0xff; HEADER + 8 * 255];
        assert!(ExactSum::from_bytes(&full).is_err());
    }

    #[test]
    fn buckets_zeros_subnormals_and_spills() {
        let tiny = p2(-1074);
        // Enough equal values for buckets (both the one- and many-lane
        // paths) to spill.
        for n in [10, SMALL, 3000, MANY_LANES, 9000] {
            assert_eq!(sum_bits(&vec![-0.0; n]), NEG_ZERO, "{n}");
            // An exact zero from values other than -0.0 is +0.0.
            let mut cancel = exact(&vec![-f64::MIN_POSITIVE; n]);
            cancel.merge(&exact(&vec![f64::MIN_POSITIVE; n]));
            assert_eq!(cancel.to_f64().to_bits(), 0, "{n}");
            let mut zeros = vec![-0.0; n];
            zeros[n / 2] = 0.0;
            assert_eq!(sum_bits(&zeros), 0, "{n}");
            zeros[n / 2] = -tiny;
            assert_eq!(exact(&zeros).to_f64(), -tiny, "{n}");
            zeros[n / 3] = tiny;
            assert_eq!(sum_bits(&zeros), 0, "{n}");
            assert_eq!(exact(&vec![-tiny; n]).to_f64(), -(n as f64) * tiny, "{n}");
            assert_eq!(exact(&vec![0.5; n]).to_f64(), n as f64 / 2.0, "{n}");
            let mut subnormals: Vec<f64> = (0..n as u64)
                .map(|i| f64::from_bits(i * 0x1_2345_6789 % (1 << 52)))
                .collect();
            subnormals.extend(vec![f64::MIN_POSITIVE; n]);
            subnormals.extend(vec![-f64::MIN_POSITIVE; n / 2]);
            check(&subnormals);
            assert!(exact(&vec![f64::NAN; n]).to_f64().is_nan());
            assert_eq!(exact(&vec![f64::INFINITY; n]).to_f64(), f64::INFINITY);
            let mut infinities = vec![f64::NEG_INFINITY; n];
            assert_eq!(exact(&infinities).to_f32(), f32::NEG_INFINITY);
            infinities[n - 1] = f64::INFINITY;
            assert!(exact(&infinities).to_f64().is_nan());
            let mut ones = vec![1.0; n];
            ones[7] = -0.0;
            ones[8] = f64::MAX;
            check(&ones);
        }
    }

    // ---- Random inputs ----

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        /// Next 64 random bits.
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 * p2(-53)
        }

        /// Random sign, exponent over about 1e-300..1e300, random mantissa.
        fn mixed(&mut self) -> f64 {
            let r = self.next();
            let exponent = 26 + (r >> 52) % 1995;
            f64::from_bits((r & (1 << 63)) | exponent << 52 | (r & FRAC_MASK))
        }

        /// Uniform in 0..n.
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A finite f64 of sign `neg`, exponent field `e`, fraction `frac`.
    fn compose(neg: bool, e: u64, frac: u64) -> f64 {
        f64::from_bits(u64::from(neg) << 63 | e << 52 | (frac & FRAC_MASK))
    }

    /// Finite values of mixed magnitudes: any finite, about 1e-300..1e300,
    /// near 1, subnormal, near the overflow threshold, zeros.
    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            3 => (any::<bool>(), 0u64..2047, any::<u64>()).prop_map(|(s, e, f)| compose(s, e, f)),
            3 => (any::<bool>(), 26u64..2021, any::<u64>()).prop_map(|(s, e, f)| compose(s, e, f)),
            3 => (any::<bool>(), 1000u64..1050, any::<u64>()).prop_map(|(s, e, f)| compose(s, e, f)),
            1 => (any::<bool>(), 0u64..3, any::<u64>()).prop_map(|(s, e, f)| compose(s, e, f)),
            1 => (any::<bool>(), 2040u64..2047, any::<u64>()).prop_map(|(s, e, f)| compose(s, e, f)),
            1 => prop_oneof![Just(0.0), Just(-0.0), Just(1.0), Just(-1.0)],
        ]
    }

    /// Finite values, each possibly followed by its negation (cancellation).
    fn finite_vec(max: usize) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec((finite(), any::<bool>()), 0..max).prop_map(|pairs| {
            pairs
                .into_iter()
                .flat_map(|(x, twin)| if twin { vec![x, -x] } else { vec![x] })
                .collect()
        })
    }

    /// Finite values, sometimes with infinities and NaN.
    fn any_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            20 => finite(),
            1 => prop_oneof![Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(f64::NAN)],
        ]
    }

    proptest! {
        #[test]
        fn matches_reference(xs in finite_vec(80)) {
            check(&xs);
        }

        #[test]
        fn long_inputs_match_reference(
            values in prop::collection::vec(any_value(), 1..6),
            picks in prop::collection::vec(any::<u16>(), SMALL..2 * MANY_LANES),
        ) {
            // Few distinct values, many times each: buckets spill.
            let xs: Vec<f64> = picks.iter().map(|&i| values[usize::from(i) % values.len()]).collect();
            let whole = exact(&xs);
            let mut pieces = ExactSum::new();
            for piece in xs.chunks(SMALL + 1) {
                pieces.add_f64(piece);
            }
            prop_assert_eq!(&whole, &pieces);
            if let (Some(expected), Some(expected32)) = (ref_f64(&xs), ref_f32(&xs)) {
                prop_assert_eq!(whole.to_f64().to_bits(), expected.to_bits());
                prop_assert_eq!(whole.to_f32().to_bits(), expected32.to_bits());
            }
        }

        #[test]
        fn split_blocks_add_what_the_values_add_one_by_one(
            top in 0u64..2047,
            spread in prop_oneof![0u64..31, 0u64..60],
            len in SMALL..(2 * SPLIT_BLOCK + 100),
            seed in any::<u64>(),
            zeros in 0u64..4,
            same_sign in any::<bool>(),
            drift in -40i64..40,
            special in prop_oneof![9 => Just(None), 1 => (0usize..20_000).prop_map(Some)],
        ) {
            // Values within `spread` binades of `top`, which drifts (split
            // exactly when the spread is at most 31), of one sign (the running sums grow
            // most) or both, some zeros of either sign, maybe an infinity or
            // NaN somewhere.
            let mut rng = Rng(seed | 1);
            let mut xs: Vec<f64> = (0..len)
                .map(|i| {
                    let r = rng.next();
                    if r % 16 < zeros {
                        return if r & 32 == 0 { 0.0 } else { -0.0 };
                    }
                    // Magnitudes that move up or down every 3000 values.
                    let moved = (top as i64 + (i / 3000) as i64 * drift).clamp(0, 2046) as u64;
                    let e = moved.saturating_sub(rng.next() % (spread + 1));
                    compose(!same_sign && r >> 63 != 0, e, rng.next())
                })
                .collect();
            if let Some(at) = special.filter(|&at| at < len) {
                xs[at] = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN][at % 3];
            }
            let mut one_by_one = ExactSum::new();
            one_by_one.flags |= F_ANY;
            for &x in &xs {
                one_by_one.add_one(x.to_bits());
            }
            prop_assert_eq!(exact(&xs), one_by_one);
        }

        #[test]
        fn matches_reference_f32(xs in prop::collection::vec(any::<f32>(), 0..100)) {
            let finite: Vec<f32> = xs.into_iter().filter(|x| x.is_finite()).collect();
            let mut s = ExactSum::new();
            s.add_f32(&finite);
            let wide: Vec<f64> = finite.iter().map(|&x| f64::from(x)).collect();
            prop_assert_eq!(&s, &exact(&wide));
            prop_assert_eq!(Some(s.to_f32().to_bits()), ref_f32(&wide).map(f32::to_bits));
            prop_assert_eq!(Some(s.to_f64().to_bits()), ref_f64(&wide).map(f64::to_bits));
        }

        #[test]
        fn order_and_chunking_independent(
            xs in prop::collection::vec(any_value(), 0..300),
            seed in any::<u64>(),
            cuts in prop::collection::vec(0usize..300, 0..10),
        ) {
            let whole = exact(&xs);
            // Shuffle (Fisher-Yates).
            let mut rng = Rng(seed | 1);
            let mut shuffled = xs.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.below(i + 1));
            }
            // Split at the cuts, sum each piece alone (some in several calls).
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= xs.len()).collect();
            cuts.extend([0, xs.len()]);
            cuts.sort_unstable();
            let mut parts: Vec<ExactSum> = cuts
                .windows(2)
                .map(|w| {
                    let piece = &shuffled[w[0]..w[1]];
                    let mut s = ExactSum::new();
                    if rng.next() & 1 == 0 {
                        s.add_f64(piece);
                    } else {
                        for sub in piece.chunks(1 + rng.below(50)) {
                            s.add_f64(sub);
                        }
                    }
                    s
                })
                .collect();
            // Merge in a random order, some through bytes.
            let mut merged = ExactSum::new();
            while !parts.is_empty() {
                let part = parts.swap_remove(rng.below(parts.len()));
                let part = if rng.next() & 1 == 0 {
                    ExactSum::from_bytes(&part.to_bytes()).expect("valid bytes")
                } else {
                    part
                };
                merged.merge(&part);
            }
            prop_assert_eq!(&merged, &whole);
            prop_assert_eq!(merged.to_f64().to_bits(), whole.to_f64().to_bits());
            prop_assert_eq!(merged.to_f32().to_bits(), whole.to_f32().to_bits());
            let round_trip = ExactSum::from_bytes(&whole.to_bytes()).expect("valid bytes");
            prop_assert_eq!(&round_trip, &whole);
            if let (Some(expected), Some(expected32)) = (ref_f64(&xs), ref_f32(&xs)) {
                prop_assert_eq!(whole.to_f64().to_bits(), expected.to_bits());
                prop_assert_eq!(whole.to_f32().to_bits(), expected32.to_bits());
            }
        }

        #[test]
        fn from_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(s) = ExactSum::from_bytes(&bytes) {
                // Whatever decodes rounds and re-encodes without panicking.
                let _ = (s.to_f64(), s.to_f32());
                let again = ExactSum::from_bytes(&s.to_bytes()).expect("valid bytes");
                prop_assert_eq!(again, s);
            }
        }

        #[test]
        fn from_bytes_of_plausible_headers(
            flags in 0u8..32,
            skip in 0u8..40,
            limbs in prop::collection::vec(any::<u64>(), 0..40),
        ) {
            let mut bytes = vec![flags, skip, limbs.len() as u8];
            for l in &limbs {
                bytes.extend_from_slice(&l.to_le_bytes());
            }
            let decoded = ExactSum::from_bytes(&bytes);
            prop_assert_eq!(decoded.is_ok(), usize::from(skip) + limbs.len() <= LIMBS);
            if let Ok(mut s) = decoded {
                let _ = (s.to_f64(), s.to_f32());
                s.merge(&s.clone());
                s.add_f64(&[f64::MAX; 40]);
                let _ = (s.to_f64(), s.to_f32(), s.to_bytes());
            }
        }
    }

    #[test]
    fn the_split_path_takes_narrow_blocks_and_leaves_the_rest() {
        let widen = |x: f64| x;
        let split = |xs: &[f64]| split_block(xs, widen, &mut 0);
        let mut rng = Rng(5);
        let narrow: Vec<f64> = (0..SPLIT_BLOCK).map(|_| rng.unit() - 0.5).collect();
        let parts = split(&narrow).expect("values within 2^31 split");
        let mut sum = ExactSum::new();
        for part in parts.hi.iter().chain(&parts.lo) {
            sum.add_one(part.to_bits());
        }
        assert_eq!(sum.to_f64(), exact(&narrow).to_f64());
        // A value 2^-40 of the largest, an infinity, a NaN: not split.
        for odd in [1e-12, f64::INFINITY, f64::NAN] {
            let mut block = narrow.clone();
            block[100] = odd;
            assert!(split(&block).is_none(), "{odd}");
        }
        // The guess is the block's exponent after it, right or wrong before.
        for (guess, values, e) in [(0, 1e6, 19), (19, 1e6, 19), (40, 3.0, 1), (1, -1e-6, -20)] {
            let mut top = guess;
            assert!(split_block(&vec![values; 300], widen, &mut top).is_some());
            assert_eq!(top, e, "{values} guessed {guess}");
        }
        // Zeros: no parts, and the flag says whether one was +0.0.
        let negative = vec![-0.0; 1000];
        assert_eq!(split(&negative).map(|s| s.flags), Some(0));
        let mut mixed = negative.clone();
        mixed[999] = 0.0;
        assert_eq!(split(&mixed).map(|s| s.flags), Some(F_NOT_NEG_ZERO));
        assert_eq!(exact(&negative).to_f64().to_bits(), (-0.0f64).to_bits());
        assert_eq!(exact(&mixed).to_f64().to_bits(), 0.0f64.to_bits());
        // The largest magnitudes near the ends of the range go the other way.
        assert!(split(&[f64::MAX; 300]).is_none());
        assert!(split(&[f64::MIN_POSITIVE; 300]).is_none());
        assert!(split(&[1e300; 300]).is_some());
    }

    /// Blocks whose running sums reach the bounds that [`HI_BELOW`] and
    /// [`LO_BELOW`] allow: every value of one sign with its part below the
    /// `hi` grid just under half a step, and values down to the smallest
    /// magnitude the grids accept, whose ulp is the `lo` grid.
    #[test]
    fn running_sums_at_their_bounds_stay_exact() {
        let mut rng = Rng(17);
        // Values in [1, 2): E = 0, the hi grid 2^-40, the floor 2^(52 - 83).
        let floor = 52 - HI_BELOW - LO_BELOW;
        let below_hi = 52 - HI_BELOW; // fraction bits below the hi grid
        let xs: Vec<f64> = (0..2 * SPLIT_BLOCK)
            .map(|i| {
                let r = rng.next() & FRAC_MASK;
                if i % 2 == 0 {
                    // 1 + k 2^-40 + (just under 2^-41).
                    let high = r >> below_hi << below_hi;
                    f64::from_bits(1.0f64.to_bits() | high | ((1 << (below_hi - 1)) - 1))
                } else {
                    // 2^floor (1 + f), its part below the hi grid under half
                    // a step: the fraction's bit for 2^-41 (bit 52 − 41 −
                    // floor) clear.
                    let half = 1u64 << (LO_BELOW - 1);
                    f64::from_bits(((floor + 1023) as u64) << 52 | (r & !half))
                }
            })
            .collect();
        let mut one_by_one = ExactSum::new();
        one_by_one.flags |= F_ANY;
        for &x in &xs {
            one_by_one.add_one(x.to_bits());
        }
        assert!(split_block(&xs[..SPLIT_BLOCK], |x| x, &mut 0).is_some());
        assert_eq!(exact(&xs), one_by_one);
        let negated: Vec<f64> = xs.iter().map(|x| -x).collect();
        let mut sum = ExactSum::new();
        sum.add_f64(&negated);
        sum.merge(&one_by_one);
        assert_eq!(sum.to_f64().to_bits(), 0);
    }

    // ---- Speed ----

    /// Prints ns/element of a plain sum and of `ExactSum` over 10^7 values.
    #[test]
    #[ignore = "timing; run with --release -- --ignored --nocapture"]
    fn speed() {
        use std::hint::black_box;
        use std::time::Instant;
        const N: usize = 10_000_000;
        let mut rng = Rng(11);
        let inputs: [(&str, Vec<f64>); 3] = [
            ("uniform [0,1)", (0..N).map(|_| rng.unit()).collect()),
            ("mixed 1e-300..1e300", (0..N).map(|_| rng.mixed()).collect()),
            (
                "normal-ish ±",
                (0..N).map(|_| rng.unit() + rng.unit() - 1.0).collect(),
            ),
        ];
        let best = |f: &mut dyn FnMut() -> f64| {
            (0..9)
                .map(|_| {
                    let start = Instant::now();
                    black_box(f());
                    start.elapsed().as_secs_f64() * 1e9 / N as f64
                })
                .fold(f64::INFINITY, f64::min)
        };
        for (name, xs) in &inputs {
            let plain = best(&mut || black_box(xs.as_slice()).iter().sum::<f64>());
            let mut line = format!("{name}: plain sum {plain:.2} ns/elem, exact");
            for size in [
                N,
                65536,
                MANY_LANES,
                MANY_LANES - 1,
                1000,
                SMALL,
                SMALL - 1,
                16,
            ] {
                let exact = best(&mut || {
                    let mut s = ExactSum::new();
                    for piece in black_box(xs.as_slice()).chunks(size) {
                        s.add_f64(piece);
                    }
                    s.to_f64()
                });
                line += &format!(" {exact:.2} (calls of {size}),");
            }
            println!("{line}");
        }
        let narrow: Vec<f32> = inputs[0].1.iter().map(|&x| x as f32).collect();
        let plain = best(&mut || black_box(narrow.as_slice()).iter().sum::<f32>().into());
        let exact = best(&mut || {
            let mut s = ExactSum::new();
            s.add_f32(black_box(narrow.as_slice()));
            s.to_f32().into()
        });
        println!("f32 uniform [0,1): plain sum {plain:.2} ns/elem, exact {exact:.2} ns/elem");
    }
}
