//! Deterministic random numbers for the generator: SplitMix64 to seed and to
//! hash, xoshiro256++ to draw, and the few distributions the population
//! model needs.
//!
//! Written here rather than taken from `rand` so that a dataset generated
//! from a seed never changes when a dependency is upgraded. Every random
//! choice of the generator comes from a stream derived from `(seed, stream
//! kind, a, b)` with [`Rng::stream`], or from a pure hash of such a tuple
//! with [`hash`]: which thread runs which account can therefore never change
//! a number.
//!
//! Limits: the continuous distributions use `f64::ln`, `exp` and `sqrt` from
//! the platform's math library; the same binary on the same platform gives
//! the same bytes, but two platforms whose `ln` differs in the last bit could
//! in principle round a draw differently. `below` uses a multiply-shift
//! reduction, which has a bias below 2^-32 for the small ranges used here.

/// The SplitMix64 finaliser: a bijective 64-bit mix with good avalanche.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes a tuple of words into one well-mixed word.
#[inline]
pub fn hash(parts: &[u64]) -> u64 {
    let mut h = 0x6a09_e667_f3bc_c909u64;
    for &p in parts {
        h = mix64(h ^ p).wrapping_add(0x9e37_79b9_7f4a_7c15);
    }
    mix64(h)
}

/// A uniform number in `[0, 1)` from the top 53 bits of a word.
#[inline]
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The kinds of random streams; the discriminant is part of every stream's
/// seed, so streams of different kinds never coincide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Whether an account is a creator, and the creator's traits.
    Creator = 1,
    /// An account's static profile.
    Profile,
    /// The j-th follow of an account's initial follow list.
    Follow,
    /// How many items an account posts on a day.
    Posts,
    /// One item's metadata.
    Item,
    /// How many items an account reposts on a day, and which.
    Reposts,
    /// An account's activity on one day.
    Day,
    /// Impressions sampled beyond the liked items (kept apart so that
    /// `--impressions` never changes the events).
    Impressions,
    /// Which accounts get a planted episode.
    Plant,
    /// The details of one planted episode.
    Episode,
    /// The plan of one campaign (shared by its members).
    Campaign,
    /// Exact duplicate and broken lines of one chunk.
    Dirt,
    /// Device fingerprints.
    Device,
    /// Network addresses.
    Net,
    /// An account's habits on one day (binges, links, rating sessions,
    /// clean-ups), apart from its daily activity.
    Habits,
}

/// xoshiro256++ (Blackman and Vigna): small, fast, and good enough for
/// simulation. Seeded through SplitMix64 as its authors recommend.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from one word.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(x)
        };
        let s = [next(), next(), next(), next()];
        Rng { s }
    }

    /// The stream of `kind` for `(a, b)` under `seed`.
    pub fn stream(seed: u64, kind: Stream, a: u64, b: u64) -> Rng {
        Rng::new(hash(&[seed, kind as u64, a, b]))
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn f64(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a slice of length `n` (which must be > 0).
    #[inline]
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// A uniformly chosen element of a non-empty slice.
    #[inline]
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// Exponential with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }

    /// Pareto with scale `xm` and shape `alpha` (heavy tail for small alpha).
    pub fn pareto(&mut self, xm: f64, alpha: f64) -> f64 {
        xm / (1.0 - self.f64()).powf(1.0 / alpha)
    }

    /// Standard normal (Box-Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Poisson with mean `lambda`: Knuth's product method below 30, a
    /// rounded normal approximation above.
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let limit = (-lambda).exp();
            let mut k = 0u32;
            let mut p = self.f64();
            while p > limit {
                k += 1;
                p *= self.f64();
            }
            k
        } else {
            let x = lambda + lambda.sqrt() * self.normal();
            x.round().max(0.0) as u32
        }
    }

    /// An index drawn with probability proportional to `weights` (which
    /// must have a positive sum).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// Draws from a fixed discrete distribution by binary search over its
/// cumulative weights: O(log n) per draw, for large tables (creators by
/// popularity).
#[derive(Clone, Debug, Default)]
pub struct Cumulative {
    cum: Vec<f64>,
}

impl Cumulative {
    /// Builds the table from positive weights.
    pub fn new(weights: impl IntoIterator<Item = f64>) -> Cumulative {
        let mut total = 0.0;
        let cum = weights
            .into_iter()
            .map(|w| {
                total += w;
                total
            })
            .collect();
        Cumulative { cum }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.cum.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.cum.is_empty()
    }

    /// An index drawn by weight; `None` when empty.
    pub fn draw(&self, rng: &mut Rng) -> Option<usize> {
        let total = *self.cum.last()?;
        let x = rng.f64() * total;
        Some(self.cum.partition_point(|&c| c <= x).min(self.cum.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_its_reference_sequence() {
        // Reference: xoshiro256plusplus.c with state {1, 2, 3, 4}.
        let mut r = Rng { s: [1, 2, 3, 4] };
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(got, [41_943_041, 58_720_359, 3_588_806_011_781_223]);
    }

    #[test]
    fn streams_are_stable_and_distinct() {
        let a = Rng::stream(1, Stream::Day, 7, 3).next_u64();
        assert_eq!(a, Rng::stream(1, Stream::Day, 7, 3).next_u64());
        assert_ne!(a, Rng::stream(1, Stream::Day, 7, 4).next_u64());
        assert_ne!(a, Rng::stream(1, Stream::Posts, 7, 3).next_u64());
        assert_ne!(a, Rng::stream(2, Stream::Day, 7, 3).next_u64());
    }

    #[test]
    fn distributions_have_their_means() {
        let mut r = Rng::new(42);
        let n = 20_000;
        for lambda in [0.3, 4.0, 50.0] {
            let mean = (0..n).map(|_| f64::from(r.poisson(lambda))).sum::<f64>() / n as f64;
            assert!((mean - lambda).abs() < lambda * 0.05 + 0.02, "{lambda}: {mean}");
        }
        let mean = (0..n).map(|_| r.exp(2.0)).sum::<f64>() / n as f64;
        assert!((mean - 2.0).abs() < 0.1, "{mean}");
        let below: Vec<u64> = (0..1000).map(|_| r.below(10)).collect();
        assert!(below.iter().all(|&x| x < 10));
        let c = Cumulative::new([1.0, 0.0, 3.0]);
        let mut counts = [0; 3];
        for _ in 0..4000 {
            counts[c.draw(&mut r).unwrap()] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!(counts[2] > 2 * counts[0], "{counts:?}");
    }
}
