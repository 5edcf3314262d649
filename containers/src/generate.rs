//! Arrays computed from the global index where each partition lives:
//! ranges, evenly spaced values and random numbers from a counter-based
//! generator, so the same arguments give the same values whatever the
//! layout and the number of localities.

use serde::{Deserialize, Serialize};

use hpx_runtime::{Error, Result};

use crate::data::ErasedVec;
use crate::layout::Layout;
use crate::math::Numeric;

/// A number given to a generator: integers stay exact.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Scalar {
    /// An integer.
    Int(i128),
    /// A float.
    Float(f64),
}

impl Scalar {
    fn as_f64(self) -> f64 {
        match self {
            Scalar::Int(v) => v as f64,
            Scalar::Float(v) => v,
        }
    }
}

/// How element `i` of a generated array is computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Generator {
    /// `start + i * step` (exact for integers).
    Arange { start: Scalar, step: Scalar },
    /// `num` values from `start` to `stop` (included with `endpoint`).
    Linspace {
        start: f64,
        stop: f64,
        num: u64,
        endpoint: bool,
    },
    /// Uniform in `[low, high)`.
    Uniform { seed: u64, low: f64, high: f64 },
    /// Normal with mean `mean` and standard deviation `std`.
    Normal { seed: u64, mean: f64, std: f64 },
    /// Integers uniform in `[low, high)`.
    Integers { seed: u64, low: i128, high: i128 },
}

/// Murmur3's 64-bit finaliser: a bijection that mixes every input bit.
fn fmix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The random bits of counter `i` under `seed` (not cryptographic).
pub(crate) fn random_bits(seed: u64, i: u64) -> u64 {
    let key = fmix(seed ^ 0x6a09_e667_f3bc_c908);
    fmix(fmix(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key).wrapping_add(key))
}

/// A uniform float in `[0, 1)` from counter `i`.
fn unit(seed: u64, i: u64) -> f64 {
    (random_bits(seed, i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

impl Generator {
    /// Checks the arguments.
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::BadArgument(m.to_owned()));
        match *self {
            Generator::Arange {
                step: Scalar::Int(0),
                ..
            } => bad("arange with a step of 0"),
            Generator::Arange {
                step: Scalar::Float(s),
                ..
            } if s == 0.0 || !s.is_finite() => bad("arange needs a finite, non-zero step"),
            Generator::Uniform { low, high, .. } if low.is_nan() || high.is_nan() || low > high => {
                bad("uniform needs low <= high")
            }
            Generator::Normal { std, .. } if std.is_nan() || std < 0.0 => {
                bad("normal needs std >= 0")
            }
            Generator::Integers { low, high, .. } if low >= high => {
                bad("integers needs low < high")
            }
            _ => Ok(()),
        }
    }

    /// Element `i` as `T`.
    fn at<T: Numeric>(&self, i: u64) -> T {
        match *self {
            Generator::Arange { start, step } => match (start, step, T::IS_FLOAT) {
                (Scalar::Int(a), Scalar::Int(s), false) => {
                    a.wrapping_add(s.wrapping_mul(i128::from(i))).cast::<T>()
                }
                _ => T::from_f64(start.as_f64() + i as f64 * step.as_f64()),
            },
            Generator::Linspace {
                start,
                stop,
                num,
                endpoint,
            } => {
                let div = if endpoint { num.saturating_sub(1) } else { num };
                if endpoint && i + 1 == num && num > 1 {
                    T::from_f64(stop)
                } else if div == 0 {
                    T::from_f64(start)
                } else {
                    T::from_f64(start + i as f64 * ((stop - start) / div as f64))
                }
            }
            Generator::Uniform { seed, low, high } => {
                T::from_f64(low + unit(seed, i) * (high - low))
            }
            Generator::Normal { seed, mean, std } => {
                // Box-Muller from counters 2i and 2i + 1: one value per element.
                let u1 = 1.0 - unit(seed, 2 * i);
                let u2 = unit(seed, 2 * i + 1);
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                T::from_f64(mean + std * z)
            }
            Generator::Integers { seed, low, high } => {
                let range = high.wrapping_sub(low) as u128;
                let bits =
                    u128::from(random_bits(seed, i)) << 64 | u128::from(random_bits(seed, !i));
                // Multiply-shift keeps the bias below 2^-64 for ranges under 2^64.
                let pick = if range >> 64 == 0 {
                    ((bits >> 64) * range) >> 64
                } else {
                    bits % range
                };
                low.wrapping_add(pick as i128).cast::<T>()
            }
        }
    }
}

fn generate_typed<T: Numeric>(
    data: &mut dyn ErasedVec,
    generator: &Generator,
    layout: &Layout,
    partition: usize,
) -> Result<()> {
    let dtype = data.dtype();
    let out = data
        .as_any_mut()
        .downcast_mut::<Vec<T>>()
        .ok_or_else(|| Error::BadArgument(format!("a partition of {dtype}, not {}", T::NAME)))?;
    for run in layout.runs(partition) {
        let slots = out
            .get_mut(run.local..run.local + run.len)
            .ok_or_else(|| Error::BadArgument("a run outside its partition".into()))?;
        fill(slots, run.global as u64, generator);
    }
    Ok(())
}

/// Writes elements `first..` into `slots`.
fn fill<T: Numeric>(slots: &mut [T], first: u64, generator: &Generator) {
    match *generator {
        // A float ramp, with the index counted in floats (exact below 2^53,
        // so the same values as `at`): a loop the compiler vectorises.
        Generator::Arange { start, step }
            if !matches!(
                (start, step, T::IS_FLOAT),
                (Scalar::Int(_), Scalar::Int(_), false)
            ) && first.saturating_add(slots.len() as u64) <= 1 << 53 =>
        {
            /// Counters stepped together: no addition waits for the one
            /// before.
            const LANES: usize = 8;
            let (start, step) = (start.as_f64(), step.as_f64());
            let mut i: [f64; LANES] = std::array::from_fn(|j| (first + j as u64) as f64);
            let mut groups = slots.chunks_exact_mut(LANES);
            for group in &mut groups {
                for (slot, k) in group.iter_mut().zip(&mut i) {
                    *slot = T::from_f64(start + *k * step);
                    *k += LANES as f64;
                }
            }
            for (slot, k) in groups.into_remainder().iter_mut().zip(i) {
                *slot = T::from_f64(start + k * step);
            }
        }
        _ => {
            for (slot, i) in slots.iter_mut().zip(first..) {
                *slot = generator.at::<T>(i);
            }
        }
    }
}

/// Fills `data`, partition `partition` of `layout`, from `generator`.
pub(crate) fn generate(
    data: &mut dyn ErasedVec,
    generator: &Generator,
    layout: &Layout,
    partition: usize,
) -> Result<()> {
    generator.check()?;
    let dtype = data.dtype();
    crate::data::by_dtype!(dtype, generate_typed, data, generator, layout, partition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpx_runtime::LocalityId;

    fn values(g: &Generator, len: usize, n: u32) -> Vec<f64> {
        let layout = Layout::new(len, crate::Distribution::Cyclic, n, LocalityId(0)).unwrap();
        let mut out = vec![0.0; len];
        for p in 0..layout.num_partitions() {
            let mut part = crate::data::zeros("f64", layout.partition_sizes()[p]).unwrap();
            generate(part.as_mut(), g, &layout, p).unwrap();
            let v = part.as_any().downcast_ref::<Vec<f64>>().unwrap();
            for (j, x) in v.iter().enumerate() {
                out[layout.global(p, j).unwrap()] = *x;
            }
        }
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_values_on_any_layout() {
        let g = Generator::Normal {
            seed: 7,
            mean: 1.0,
            std: 2.0,
        };
        let one = values(&g, 1000, 1);
        assert_eq!(one, values(&g, 1000, 3));
        let mean = one.iter().sum::<f64>() / 1000.0;
        let var = one.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 999.0;
        assert!((mean - 1.0).abs() < 0.25, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.25, "std {}", var.sqrt());
        let u = values(
            &Generator::Uniform {
                seed: 1,
                low: -1.0,
                high: 1.0,
            },
            10_000,
            2,
        );
        assert!(u.iter().all(|x| (-1.0..1.0).contains(x)));
        assert!((u.iter().sum::<f64>() / 10_000.0).abs() < 0.05);
        assert_ne!(
            values(
                &Generator::Uniform {
                    seed: 2,
                    low: 0.0,
                    high: 1.0
                },
                10,
                1
            ),
            values(
                &Generator::Uniform {
                    seed: 3,
                    low: 0.0,
                    high: 1.0
                },
                10,
                1
            )
        );
    }

    #[test]
    fn a_filled_ramp_has_the_values_of_its_elements() {
        let ramps = [
            (Scalar::Int(0), Scalar::Int(1)),
            (Scalar::Float(0.1), Scalar::Float(0.7)),
            (Scalar::Int(-3), Scalar::Float(1e-3)),
            (Scalar::Float(1e300), Scalar::Int(-7)),
        ];
        for (start, step) in ramps {
            let g = Generator::Arange { start, step };
            for first in [0u64, 12_345, (1 << 53) - 10] {
                let mut f = vec![0.0f64; 100];
                fill(&mut f, first, &g);
                let expected: Vec<f64> = (first..first + 100).map(|i| g.at(i)).collect();
                assert_eq!(f, expected, "{g:?} from {first}");
                let mut f = vec![0.0f32; 100];
                fill(&mut f, first, &g);
                let expected: Vec<f32> = (first..first + 100).map(|i| g.at(i)).collect();
                assert_eq!(f, expected, "{g:?} from {first}");
            }
        }
        let g = Generator::Arange {
            start: Scalar::Int(i128::from(i64::MAX) - 50),
            step: Scalar::Int(1),
        };
        let mut f = vec![0i64; 100];
        fill(&mut f, 0, &g);
        assert_eq!(f, (0..100).map(|i| g.at::<i64>(i)).collect::<Vec<_>>());
    }

    #[test]
    fn ranges_and_spaces() {
        let g = Generator::Arange {
            start: Scalar::Int(5),
            step: Scalar::Int(-2),
        };
        assert_eq!(g.at::<i64>(3), -1);
        let g = Generator::Linspace {
            start: 0.0,
            stop: 1.0,
            num: 5,
            endpoint: true,
        };
        assert_eq!(
            (0..5).map(|i| g.at::<f64>(i)).collect::<Vec<_>>(),
            [0.0, 0.25, 0.5, 0.75, 1.0]
        );
        let g = Generator::Integers {
            seed: 9,
            low: -3,
            high: 4,
        };
        let v: Vec<i32> = (0..1000).map(|i| g.at::<i32>(i)).collect();
        assert!(v.iter().all(|x| (-3..4).contains(x)));
        assert!((-3..4).all(|k| v.contains(&k)));
        assert!(Generator::Arange {
            start: Scalar::Int(0),
            step: Scalar::Int(0)
        }
        .check()
        .is_err());
    }
}
