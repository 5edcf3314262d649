//! Element-wise arithmetic on the slices of a partition: the kernels that
//! distributed array operations run where the data lives.
//!
//! The semantics are NumPy's, with an error where NumPy would produce
//! garbage or a warning:
//!
//! - Integer `Add`, `Sub`, `Mul` and `Pow` wrap around on overflow. `Div` on
//!   integers is floor division (Python's `//`) and `Rem` the matching floor
//!   modulo (the result has the divisor's sign); a zero divisor is an
//!   [`Error::BadArgument`]. A negative integer exponent is an error too.
//! - Floating-point operations follow IEEE 754 (`1.0 / 0.0` is infinite,
//!   `sqrt(-1.0)` is NaN); `Rem` is Python's floor modulo and
//!   `Minimum`/`Maximum` propagate NaN (`np.minimum`, `np.maximum`).
//!
//! Every kernel chooses its operation once and then runs a plain loop over
//! the slices, which the compiler vectorizes; none panics on any input.

use serde::{Deserialize, Serialize};

use hpx_runtime::element::Element;
use hpx_runtime::{Error, Result};

use self::kernels::{Kernels, Operands, Prim};

/// Element-wise operations of two operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinaryOp {
    /// `a + b` (integers wrap).
    Add,
    /// `a - b` (integers wrap).
    Sub,
    /// `a * b` (integers wrap).
    Mul,
    /// `a / b`: floor division for integers (Python's `//`; a zero divisor is
    /// an error), IEEE division for floating-point numbers.
    Div,
    /// `a % b` with the sign of the divisor (Python's `%`; a zero integer
    /// divisor is an error).
    Rem,
    /// `a ** b` (integers wrap; a negative integer exponent is an error).
    Pow,
    /// The smaller operand (NaN if either is NaN).
    Minimum,
    /// The larger operand (NaN if either is NaN).
    Maximum,
    /// The angle of the point `(b, a)`, NumPy's `arctan2(a, b)`
    /// (floating-point types only).
    Arctan2,
    /// `sqrt(a² + b²)` without overflow on the way (floating-point types
    /// only).
    Hypot,
    /// `a` with the sign of `b` (floating-point types only).
    Copysign,
    /// The remainder with the sign of the dividend, C's `fmod` (a zero
    /// integer divisor is an error).
    Fmod,
}

impl BinaryOp {
    /// The operation's name, as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Rem => "rem",
            BinaryOp::Pow => "pow",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Arctan2 => "arctan2",
            BinaryOp::Hypot => "hypot",
            BinaryOp::Copysign => "copysign",
            BinaryOp::Fmod => "fmod",
        }
    }

    /// Whether the operation is defined for floating-point types only.
    pub fn is_float_only(self) -> bool {
        matches!(
            self,
            BinaryOp::Arctan2 | BinaryOp::Hypot | BinaryOp::Copysign
        )
    }
}

/// Element-wise functions of one operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    /// `-a` (unsigned integers wrap, like NumPy).
    Neg,
    /// `|a|` (the minimum of a signed type wraps to itself, like NumPy).
    Abs,
    /// -1, 0 or 1 by the sign of `a` (NaN stays NaN), in `a`'s type.
    Sign,
    /// The largest integer not above `a` (integers are kept as they are).
    Floor,
    /// The smallest integer not below `a` (integers are kept).
    Ceil,
    /// `a` rounded toward zero (integers are kept).
    Trunc,
    /// `a` rounded to the nearest integer, halves to even (NumPy's `rint`
    /// and `round`; integers are kept).
    Rint,
    /// The square root (NaN for negative numbers).
    Sqrt,
    /// The cube root.
    Cbrt,
    /// `e ** a`.
    Exp,
    /// `2 ** a`.
    Exp2,
    /// `e ** a - 1`, exact near 0.
    Expm1,
    /// The natural logarithm (`log(0)` is `-inf`, negative numbers give NaN).
    Log,
    /// The base-2 logarithm.
    Log2,
    /// The base-10 logarithm.
    Log10,
    /// `log(1 + a)`, exact near 0.
    Log1p,
    /// The sine (radians).
    Sin,
    /// The cosine (radians).
    Cos,
    /// The tangent (radians).
    Tan,
    /// The inverse sine (NaN outside [-1, 1]).
    Arcsin,
    /// The inverse cosine (NaN outside [-1, 1]).
    Arccos,
    /// The inverse tangent.
    Arctan,
    /// The hyperbolic sine.
    Sinh,
    /// The hyperbolic cosine.
    Cosh,
    /// The hyperbolic tangent.
    Tanh,
    /// The inverse hyperbolic sine.
    Arcsinh,
    /// The inverse hyperbolic cosine (NaN below 1).
    Arccosh,
    /// The inverse hyperbolic tangent (NaN outside [-1, 1]).
    Arctanh,
}

impl UnaryOp {
    /// Every function, for lookups by name.
    pub const ALL: [UnaryOp; 28] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Trunc,
        UnaryOp::Rint,
        UnaryOp::Sqrt,
        UnaryOp::Cbrt,
        UnaryOp::Exp,
        UnaryOp::Exp2,
        UnaryOp::Expm1,
        UnaryOp::Log,
        UnaryOp::Log2,
        UnaryOp::Log10,
        UnaryOp::Log1p,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tan,
        UnaryOp::Arcsin,
        UnaryOp::Arccos,
        UnaryOp::Arctan,
        UnaryOp::Sinh,
        UnaryOp::Cosh,
        UnaryOp::Tanh,
        UnaryOp::Arcsinh,
        UnaryOp::Arccosh,
        UnaryOp::Arctanh,
    ];

    /// The function's name (NumPy's, but `neg` for `negative`), as used in
    /// error messages.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Trunc => "trunc",
            UnaryOp::Rint => "rint",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Cbrt => "cbrt",
            UnaryOp::Exp => "exp",
            UnaryOp::Exp2 => "exp2",
            UnaryOp::Expm1 => "expm1",
            UnaryOp::Log => "log",
            UnaryOp::Log2 => "log2",
            UnaryOp::Log10 => "log10",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tan => "tan",
            UnaryOp::Arcsin => "arcsin",
            UnaryOp::Arccos => "arccos",
            UnaryOp::Arctan => "arctan",
            UnaryOp::Sinh => "sinh",
            UnaryOp::Cosh => "cosh",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Arcsinh => "arcsinh",
            UnaryOp::Arccosh => "arccosh",
            UnaryOp::Arctanh => "arctanh",
        }
    }

    /// The function called `name` ([`UnaryOp::name`]), if any.
    pub fn from_name(name: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Whether the function's values are floating-point numbers whatever the
    /// operand type (every function but those that keep the operand's
    /// type: `Neg`, `Abs`, `Sign` and the roundings).
    pub fn is_float_valued(self) -> bool {
        !matches!(
            self,
            UnaryOp::Neg
                | UnaryOp::Abs
                | UnaryOp::Sign
                | UnaryOp::Floor
                | UnaryOp::Ceil
                | UnaryOp::Trunc
                | UnaryOp::Rint
        )
    }
}

/// `op` on each of `a` into `out`, in the floating-point type `$f`, each
/// element converted by `$conv` first: one loop per function, the match
/// outside it.
macro_rules! float_map {
    ($op:expr, $a:expr, $out:expr, $f:ty, |$x:ident| $conv:expr) => {{
        let (a, out) = ($a, $out);
        match $op {
            UnaryOp::Neg => kernels::map(a, out, |$x| -($conv)),
            UnaryOp::Abs => kernels::map(a, out, |$x| <$f>::abs($conv)),
            UnaryOp::Sign => kernels::map(a, out, |$x| {
                let v: $f = $conv;
                if v > 0.0 {
                    1.0
                } else if v < 0.0 {
                    -1.0
                } else if v == 0.0 {
                    0.0
                } else {
                    v
                }
            }),
            UnaryOp::Floor => kernels::map(a, out, |$x| <$f>::floor($conv)),
            UnaryOp::Ceil => kernels::map(a, out, |$x| <$f>::ceil($conv)),
            UnaryOp::Trunc => kernels::map(a, out, |$x| <$f>::trunc($conv)),
            UnaryOp::Rint => kernels::map(a, out, |$x| <$f>::round_ties_even($conv)),
            UnaryOp::Sqrt => kernels::map(a, out, |$x| <$f>::sqrt($conv)),
            UnaryOp::Cbrt => kernels::map(a, out, |$x| <$f>::cbrt($conv)),
            UnaryOp::Exp => kernels::map(a, out, |$x| <$f>::exp($conv)),
            UnaryOp::Exp2 => kernels::map(a, out, |$x| <$f>::exp2($conv)),
            UnaryOp::Expm1 => kernels::map(a, out, |$x| <$f>::exp_m1($conv)),
            UnaryOp::Log => kernels::map(a, out, |$x| <$f>::ln($conv)),
            UnaryOp::Log2 => kernels::map(a, out, |$x| <$f>::log2($conv)),
            UnaryOp::Log10 => kernels::map(a, out, |$x| <$f>::log10($conv)),
            UnaryOp::Log1p => kernels::map(a, out, |$x| <$f>::ln_1p($conv)),
            UnaryOp::Sin => kernels::map(a, out, |$x| <$f>::sin($conv)),
            UnaryOp::Cos => kernels::map(a, out, |$x| <$f>::cos($conv)),
            UnaryOp::Tan => kernels::map(a, out, |$x| <$f>::tan($conv)),
            UnaryOp::Arcsin => kernels::map(a, out, |$x| <$f>::asin($conv)),
            UnaryOp::Arccos => kernels::map(a, out, |$x| <$f>::acos($conv)),
            UnaryOp::Arctan => kernels::map(a, out, |$x| <$f>::atan($conv)),
            UnaryOp::Sinh => kernels::map(a, out, |$x| <$f>::sinh($conv)),
            UnaryOp::Cosh => kernels::map(a, out, |$x| <$f>::cosh($conv)),
            UnaryOp::Tanh => kernels::map(a, out, |$x| <$f>::tanh($conv)),
            UnaryOp::Arcsinh => kernels::map(a, out, |$x| <$f>::asinh($conv)),
            UnaryOp::Arccosh => kernels::map(a, out, |$x| <$f>::acosh($conv)),
            UnaryOp::Arctanh => kernels::map(a, out, |$x| <$f>::atanh($conv)),
        }
    }};
}

/// Element-wise comparisons; the result is a mask of 0/1 bytes (u8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareOp {
    /// `a == b`.
    Eq,
    /// `a != b` (true when either is NaN).
    Ne,
    /// `a < b`.
    Lt,
    /// `a <= b`.
    Le,
    /// `a > b`.
    Gt,
    /// `a >= b`.
    Ge,
}

impl CompareOp {
    /// The comparison's name, as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
        }
    }
}

/// Numbers an array can hold: the element types with arithmetic.
///
/// Implemented for every [`Element`]: `i8` to `i128`, `isize`, `u8` to
/// `u128`, `usize`, `f32` and `f64`.
pub trait Numeric: Element + PartialOrd + Kernels {
    /// The type sums accumulate in (NumPy's rule): `i8`, `i16`, `i32`,
    /// `i64`, `isize` -> `i64`; `i128` -> `i128`; `u8`, `u16`, `u32`, `u64`,
    /// `usize` -> `u64`; `u128` -> `u128`; `f32` -> `f32`; `f64` -> `f64`.
    type Sum: Numeric;
    /// The type of float-valued functions (sqrt, exp, ...) and of means:
    /// `f32` -> `f32`, every other type -> `f64`.
    type Float: Numeric;
    /// Whether the type is `f32` or `f64`.
    const IS_FLOAT: bool;

    /// Zero.
    fn zero() -> Self;
    /// One.
    fn one() -> Self;
    /// `self as f64`.
    fn to_f64(self) -> f64;
    /// `v as Self` (saturating for integers, NaN -> 0).
    fn from_f64(v: f64) -> Self;
    /// `self as Self::Sum`.
    fn widen(self) -> Self::Sum;

    /// `self as U`, exactly like Rust's `as` between the two primitive types:
    /// integers wrap (or sign-extend), floating-point numbers saturate into
    /// integers (NaN -> 0), integers round to the nearest floating-point
    /// number.
    #[inline(always)]
    fn cast<U: Numeric>(self) -> U {
        U::from_prim(self.to_prim())
    }
}

/// The machinery behind [`Numeric`]: per-type kernels, sealed from users.
mod kernels {
    use super::{BinaryOp, Numeric, Result, UnaryOp};

    /// A value of one of the primitive types, held without loss in the
    /// widest type of its kind, so that `Prim -> U` is the direct `as` cast.
    #[derive(Clone, Copy, Debug)]
    pub enum Prim {
        /// A signed integer.
        I(i128),
        /// An unsigned integer.
        U(u128),
        /// An `f32`.
        F32(f32),
        /// An `f64`.
        F64(f64),
    }

    /// The operands of a binary operation.
    #[derive(Clone, Copy, Debug)]
    pub enum Operands<'a, T> {
        /// Two slices of the same length.
        Both(&'a [T], &'a [T]),
        /// `a[i] op s`.
        Right(&'a [T], T),
        /// `s op a[i]`.
        Left(T, &'a [T]),
    }

    impl<T: Copy> Operands<'_, T> {
        /// Whether some right-hand operand that will be used satisfies
        /// `pred` (a scalar is not used when the slice is empty).
        #[inline]
        pub fn any_right(self, pred: impl Fn(T) -> bool) -> bool {
            match self {
                Operands::Both(_, b) => b.iter().any(|&y| pred(y)),
                Operands::Right(a, s) => !a.is_empty() && pred(s),
                Operands::Left(_, a) => a.iter().any(|&y| pred(y)),
            }
        }

        /// `out[i] = f(left[i], right[i])`, one tight loop per shape.
        #[inline(always)]
        pub fn apply<R>(self, out: &mut [R], f: impl Fn(T, T) -> R) {
            match self {
                Operands::Both(a, b) => {
                    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                        *o = f(x, y);
                    }
                }
                Operands::Right(a, s) => {
                    for (o, &x) in out.iter_mut().zip(a) {
                        *o = f(x, s);
                    }
                }
                Operands::Left(s, a) => {
                    for (o, &y) in out.iter_mut().zip(a) {
                        *o = f(s, y);
                    }
                }
            }
        }
    }

    /// `out[i] = f(a[i])`.
    #[inline(always)]
    pub(super) fn map<T: Copy, R>(a: &[T], out: &mut [R], f: impl Fn(T) -> R) {
        for (o, &x) in out.iter_mut().zip(a) {
            *o = f(x);
        }
    }

    /// The per-type kernels. Lengths are checked by the callers.
    pub trait Kernels: Copy {
        /// The value, for [`Numeric::cast`].
        fn to_prim(self) -> Prim;
        /// `p as Self`.
        fn from_prim(p: Prim) -> Self;
        /// `out[i] = left op right`.
        fn binary_kernel(op: BinaryOp, ops: Operands<'_, Self>, out: &mut [Self]) -> Result<()>;
        /// `Neg` and `Abs` in the element type (other functions: no-op).
        fn unary_kernel(op: UnaryOp, a: &[Self], out: &mut [Self]);
        /// Every function, in `Self::Float`.
        fn unary_float_kernel(op: UnaryOp, a: &[Self], out: &mut [<Self as Numeric>::Float])
        where
            Self: Numeric;
        /// `c = a @ b` for row-major `a` (`m` × `k`), `b` (`k` × `n`) and
        /// `c` (`m` × `n`, overwritten); integers wrap, as NumPy's.
        fn matmul_kernel(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self]);
    }
}

fn division_by_zero() -> Error {
    Error::BadArgument("integer division by zero".to_string())
}

fn negative_power() -> Error {
    Error::BadArgument("integers to negative integer powers are not allowed".to_string())
}

/// The parts of `impl Numeric` and `impl Kernels` that all types share.
macro_rules! numeric_common {
    ($t:ty, $sum:ty, $float:ty, $is_float:expr, $zero:expr, $one:expr) => {
        impl Numeric for $t {
            type Sum = $sum;
            type Float = $float;
            const IS_FLOAT: bool = $is_float;

            #[inline(always)]
            fn zero() -> Self {
                $zero
            }

            #[inline(always)]
            fn one() -> Self {
                $one
            }

            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }

            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }

            #[inline(always)]
            fn widen(self) -> $sum {
                self as $sum
            }
        }
    };
}

/// `to_prim`, `from_prim` and `unary_float_kernel` of an integer type.
macro_rules! integer_kernels_common {
    ($t:ty, $prim:ident, $wide:ty) => {
        #[inline(always)]
        fn to_prim(self) -> Prim {
            Prim::$prim(self as $wide)
        }

        #[inline(always)]
        fn from_prim(p: Prim) -> Self {
            match p {
                Prim::I(v) => v as $t,
                Prim::U(v) => v as $t,
                Prim::F32(v) => v as $t,
                Prim::F64(v) => v as $t,
            }
        }

        #[inline(always)]
        fn unary_float_kernel(op: UnaryOp, a: &[Self], out: &mut [f64]) {
            float_map!(op, a, out, f64, |x| x as f64)
        }

        fn matmul_kernel(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self]) {
            c.fill(0);
            if n == 0 {
                return;
            }
            for (row, a_row) in c.chunks_exact_mut(n).zip(a.chunks_exact(k.max(1))).take(m) {
                for (&x, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
                    if x == 0 {
                        continue;
                    }
                    for (o, &y) in row.iter_mut().zip(b_row) {
                        *o = o.wrapping_add(x.wrapping_mul(y));
                    }
                }
            }
        }
    };
}

/// Wrapping `base ** exp` by square-and-multiply over all bits of `exp`
/// (`exp >= 0`).
macro_rules! int_pow {
    ($t:ty) => {
        |base: $t, exp: $t| -> $t {
            let mut acc: $t = 1;
            let mut base = base;
            let mut e = exp;
            while e > 0 {
                if (e & 1) == 1 {
                    acc = acc.wrapping_mul(base);
                }
                e >>= 1;
                base = base.wrapping_mul(base);
            }
            acc
        }
    };
}

/// The operations that signed and unsigned integers share.
macro_rules! integer_binary {
    ($t:ty, $op:expr, $ops:expr, $out:expr, $div:expr, $rem:expr, $negative:expr) => {{
        let (ops, out) = ($ops, $out);
        match $op {
            BinaryOp::Add => ops.apply(out, <$t>::wrapping_add),
            BinaryOp::Sub => ops.apply(out, <$t>::wrapping_sub),
            BinaryOp::Mul => ops.apply(out, <$t>::wrapping_mul),
            BinaryOp::Div => {
                if ops.any_right(|y| y == 0) {
                    return Err(division_by_zero());
                }
                ops.apply(out, $div)
            }
            BinaryOp::Rem => {
                if ops.any_right(|y| y == 0) {
                    return Err(division_by_zero());
                }
                ops.apply(out, $rem)
            }
            BinaryOp::Pow => {
                if ops.any_right($negative) {
                    return Err(negative_power());
                }
                ops.apply(out, int_pow!($t))
            }
            BinaryOp::Minimum => ops.apply(out, |x: $t, y: $t| if x <= y { x } else { y }),
            BinaryOp::Maximum => ops.apply(out, |x: $t, y: $t| if x >= y { x } else { y }),
            BinaryOp::Fmod => {
                if ops.any_right(|y| y == 0) {
                    return Err(division_by_zero());
                }
                ops.apply(out, <$t>::wrapping_rem)
            }
            BinaryOp::Arctan2 | BinaryOp::Hypot | BinaryOp::Copysign => {
                return Err(Error::BadArgument(format!(
                    "{} of integers: convert them to a floating-point type first",
                    $op.name()
                )))
            }
        }
        Ok(())
    }};
}

macro_rules! signed {
    ($($t:ty => $sum:ty),*) => {$(
        numeric_common!($t, $sum, f64, false, 0, 1);

        impl Kernels for $t {
            integer_kernels_common!($t, I, i128);

            #[inline(always)]
            fn binary_kernel(op: BinaryOp, ops: Operands<'_, $t>, out: &mut [$t]) -> Result<()> {
                integer_binary!(
                    $t,
                    op,
                    ops,
                    out,
                    // Floor division; MIN / -1 wraps to MIN (remainder 0).
                    |x: $t, y: $t| {
                        let q = x.wrapping_div(y);
                        let r = x.wrapping_rem(y);
                        if r != 0 && (r ^ y) < 0 {
                            q.wrapping_sub(1)
                        } else {
                            q
                        }
                    },
                    // Floor modulo: the sign of the divisor.
                    |x: $t, y: $t| {
                        let r = x.wrapping_rem(y);
                        if r != 0 && (r ^ y) < 0 {
                            r.wrapping_add(y)
                        } else {
                            r
                        }
                    },
                    |y: $t| y < 0
                )
            }

            #[inline(always)]
            fn unary_kernel(op: UnaryOp, a: &[$t], out: &mut [$t]) {
                match op {
                    UnaryOp::Neg => kernels::map(a, out, <$t>::wrapping_neg),
                    UnaryOp::Abs => kernels::map(a, out, <$t>::wrapping_abs),
                    UnaryOp::Sign => kernels::map(a, out, <$t>::signum),
                    // Roundings keep integers; float-valued functions go
                    // through unary_float.
                    _ => out.copy_from_slice(a),
                }
            }
        }
    )*};
}

macro_rules! unsigned {
    ($($t:ty => $sum:ty),*) => {$(
        numeric_common!($t, $sum, f64, false, 0, 1);

        impl Kernels for $t {
            integer_kernels_common!($t, U, u128);

            #[inline(always)]
            fn binary_kernel(op: BinaryOp, ops: Operands<'_, $t>, out: &mut [$t]) -> Result<()> {
                integer_binary!(
                    $t,
                    op,
                    ops,
                    out,
                    |x: $t, y: $t| x.wrapping_div(y),
                    |x: $t, y: $t| x.wrapping_rem(y),
                    |_: $t| false
                )
            }

            #[inline(always)]
            fn unary_kernel(op: UnaryOp, a: &[$t], out: &mut [$t]) {
                match op {
                    UnaryOp::Neg => kernels::map(a, out, <$t>::wrapping_neg),
                    UnaryOp::Sign => kernels::map(a, out, |x: $t| <$t>::from(x != 0)),
                    // Abs and the roundings keep unsigned integers;
                    // float-valued functions go through unary_float.
                    _ => out.copy_from_slice(a),
                }
            }
        }
    )*};
}

macro_rules! float {
    ($($t:ty => $prim:ident),*) => {$(
        numeric_common!($t, $t, $t, true, 0.0, 1.0);

        impl Kernels for $t {
            #[inline(always)]
            fn to_prim(self) -> Prim {
                Prim::$prim(self)
            }

            #[inline(always)]
            fn from_prim(p: Prim) -> Self {
                match p {
                    Prim::I(v) => v as $t,
                    Prim::U(v) => v as $t,
                    Prim::F32(v) => v as $t,
                    Prim::F64(v) => v as $t,
                }
            }

            #[inline(always)]
            fn binary_kernel(op: BinaryOp, ops: Operands<'_, $t>, out: &mut [$t]) -> Result<()> {
                match op {
                    BinaryOp::Add => ops.apply(out, |x: $t, y: $t| x + y),
                    BinaryOp::Sub => ops.apply(out, |x: $t, y: $t| x - y),
                    BinaryOp::Mul => ops.apply(out, |x: $t, y: $t| x * y),
                    BinaryOp::Div => ops.apply(out, |x: $t, y: $t| x / y),
                    // NumPy's npy_divmod: the sign of the divisor, zero as
                    // copysign(0, divisor).
                    BinaryOp::Rem => ops.apply(out, |x: $t, y: $t| {
                        let r = x % y;
                        if r == 0.0 {
                            <$t>::copysign(0.0, y)
                        } else if (r < 0.0) != (y < 0.0) {
                            r + y
                        } else {
                            r
                        }
                    }),
                    BinaryOp::Pow => ops.apply(out, <$t>::powf),
                    BinaryOp::Minimum => ops.apply(out, |x: $t, y: $t| {
                        if x <= y || x.is_nan() { x } else { y }
                    }),
                    BinaryOp::Maximum => ops.apply(out, |x: $t, y: $t| {
                        if x >= y || x.is_nan() { x } else { y }
                    }),
                    BinaryOp::Arctan2 => ops.apply(out, <$t>::atan2),
                    BinaryOp::Hypot => ops.apply(out, <$t>::hypot),
                    BinaryOp::Copysign => ops.apply(out, <$t>::copysign),
                    BinaryOp::Fmod => ops.apply(out, |x: $t, y: $t| x % y),
                }
                Ok(())
            }

            #[inline(always)]
            fn unary_kernel(op: UnaryOp, a: &[$t], out: &mut [$t]) {
                float_map!(op, a, out, $t, |x| x)
            }

            fn matmul_kernel(m: usize, k: usize, n: usize, a: &[$t], b: &[$t], c: &mut [$t]) {
                assert!(
                    a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
                    "matmul_kernel: callers check the lengths"
                );
                if m == 0 || n == 0 {
                    return;
                }
                // SAFETY: the three slices hold at least m*k, k*n and m*n
                // elements (checked above), read and written row-major
                // (column stride 1, row strides k, n and n); `c` is only
                // written (`read_dst` false: c = 1 * a @ b).
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        k as isize,
                        b.as_ptr(),
                        1,
                        n as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }

            #[inline(always)]
            fn unary_float_kernel(op: UnaryOp, a: &[$t], out: &mut [$t]) {
                float_map!(op, a, out, $t, |x| x)
            }
        }
    )*};
}

signed!(i8 => i64, i16 => i64, i32 => i64, i64 => i64, i128 => i128, isize => i64);
unsigned!(u8 => u64, u16 => u64, u32 => u64, u64 => u64, u128 => u128, usize => u64);
float!(f32 => F32, f64 => F64);

/// Checks that the operand and output slices have the same length.
#[inline(always)]
fn check_lengths(name: &str, a: usize, b: Option<usize>, out: usize) -> Result<()> {
    match b {
        Some(b) if a != b || a != out => Err(Error::BadArgument(format!(
            "{name}: operand lengths {a} and {b} and output length {out} differ"
        ))),
        None if a != out => Err(Error::BadArgument(format!(
            "{name}: operand length {a} and output length {out} differ"
        ))),
        _ => Ok(()),
    }
}

/// `out[i] = a[i] op b[i]`.
///
/// The three lengths must be equal, else [`Error::BadArgument`]; so is an
/// integer `Div` or `Rem` by zero and an integer `Pow` with a negative
/// exponent (then `out` is left unchanged).
#[inline(always)]
pub(crate) fn binary<T: Numeric>(op: BinaryOp, a: &[T], b: &[T], out: &mut [T]) -> Result<()> {
    check_lengths(op.name(), a.len(), Some(b.len()), out.len())?;
    T::binary_kernel(op, Operands::Both(a, b), out)
}

/// `out[i] = a[i] op s`, or `s op a[i]` when `scalar_first`.
///
/// `a` and `out` must have the same length. Errors as [`binary`]; a zero
/// scalar divisor (or negative scalar exponent) is an error unless `a` is
/// empty, since then no operation happens (as in NumPy).
#[inline(always)]
pub(crate) fn binary_scalar<T: Numeric>(
    op: BinaryOp,
    a: &[T],
    s: T,
    scalar_first: bool,
    out: &mut [T],
) -> Result<()> {
    check_lengths(op.name(), a.len(), None, out.len())?;
    let ops = if scalar_first {
        Operands::Left(s, a)
    } else {
        Operands::Right(a, s)
    };
    T::binary_kernel(op, ops, out)
}

/// `out[i] = op(a[i])` in the element type, for `Neg` and `Abs`: unsigned
/// `Neg` wraps and signed `Abs` of the minimum wraps to itself, like NumPy.
///
/// A float-valued function ([`UnaryOp::is_float_valued`]) is an
/// [`Error::BadArgument`]: use [`unary_float`]. So are different lengths.
#[inline(always)]
pub(crate) fn unary<T: Numeric>(op: UnaryOp, a: &[T], out: &mut [T]) -> Result<()> {
    if op.is_float_valued() {
        return Err(Error::BadArgument(format!(
            "{} is float-valued: use unary_float",
            op.name()
        )));
    }
    check_lengths(op.name(), a.len(), None, out.len())?;
    T::unary_kernel(op, a, out);
    Ok(())
}

/// `out[i] = op(a[i])` computed in `T::Float` (integers are converted to
/// `f64` first, like NumPy). Every function is allowed, `Neg` and `Abs`
/// included. Different lengths are an [`Error::BadArgument`].
#[inline(always)]
pub(crate) fn unary_float<T: Numeric>(op: UnaryOp, a: &[T], out: &mut [T::Float]) -> Result<()> {
    check_lengths(op.name(), a.len(), None, out.len())?;
    T::unary_float_kernel(op, a, out);
    Ok(())
}

/// Runs one comparison over `ops`.
#[inline(always)]
fn compare_kernel<T: Numeric>(op: CompareOp, ops: Operands<'_, T>, out: &mut [u8]) {
    match op {
        CompareOp::Eq => ops.apply(out, |x, y| (x == y) as u8),
        CompareOp::Ne => ops.apply(out, |x, y| (x != y) as u8),
        CompareOp::Lt => ops.apply(out, |x, y| (x < y) as u8),
        CompareOp::Le => ops.apply(out, |x, y| (x <= y) as u8),
        CompareOp::Gt => ops.apply(out, |x, y| (x > y) as u8),
        CompareOp::Ge => ops.apply(out, |x, y| (x >= y) as u8),
    }
}

/// `out[i] = (a[i] op b[i]) as u8`: NaN compares false except with `Ne`, as
/// in IEEE 754. The three lengths must be equal, else
/// [`Error::BadArgument`].
#[inline(always)]
pub(crate) fn compare<T: Numeric>(op: CompareOp, a: &[T], b: &[T], out: &mut [u8]) -> Result<()> {
    check_lengths(op.name(), a.len(), Some(b.len()), out.len())?;
    compare_kernel(op, Operands::Both(a, b), out);
    Ok(())
}

/// `out[i] = (a[i] op s) as u8`, or `(s op a[i]) as u8` when
/// `scalar_first`. `a` and `out` must have the same length.
#[inline(always)]
pub(crate) fn compare_scalar<T: Numeric>(
    op: CompareOp,
    a: &[T],
    s: T,
    scalar_first: bool,
    out: &mut [u8],
) -> Result<()> {
    check_lengths(op.name(), a.len(), None, out.len())?;
    let ops = if scalar_first {
        Operands::Left(s, a)
    } else {
        Operands::Right(a, s)
    };
    compare_kernel(op, ops, out);
    Ok(())
}

/// `out[i] = if mask[i] != 0 { a[i] } else { b[i] }`. The four lengths must
/// be equal, else [`Error::BadArgument`].
#[inline(always)]
pub(crate) fn select<T: Numeric>(mask: &[u8], a: &[T], b: &[T], out: &mut [T]) -> Result<()> {
    if mask.len() != out.len() {
        return Err(Error::BadArgument(format!(
            "select: mask length {} and output length {} differ",
            mask.len(),
            out.len()
        )));
    }
    check_lengths("select", a.len(), Some(b.len()), out.len())?;
    for (((o, &m), &x), &y) in out.iter_mut().zip(mask).zip(a).zip(b) {
        *o = if m != 0 { x } else { y };
    }
    Ok(())
}

/// `out[i] = a[i] as U` (see [`Numeric::cast`]).
///
/// Converts the first `min(a.len(), out.len())` elements; callers pass
/// slices of the same length.
#[inline(always)]
pub(crate) fn cast_slice<T: Numeric, U: Numeric>(a: &[T], out: &mut [U]) {
    kernels::map(a, out, |x| x.cast::<U>());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BINARY: [BinaryOp; 12] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
        BinaryOp::Pow,
        BinaryOp::Minimum,
        BinaryOp::Maximum,
        BinaryOp::Arctan2,
        BinaryOp::Hypot,
        BinaryOp::Copysign,
        BinaryOp::Fmod,
    ];
    const UNARY: [UnaryOp; 7] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Sqrt,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sin,
        UnaryOp::Cos,
    ];
    const COMPARE: [CompareOp; 6] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Le,
        CompareOp::Gt,
        CompareOp::Ge,
    ];

    /// Equal, or both NaN.
    fn same<T: Numeric>(x: T, y: T) -> bool {
        #[allow(clippy::eq_op)]
        let both_nan = x != x && y != y;
        x == y || both_nan
    }

    fn is_bad_argument<T: std::fmt::Debug>(r: Result<T>, text: &str) -> bool {
        matches!(r, Err(Error::BadArgument(m)) if m.contains(text))
    }

    /// Applies `binary` and both `binary_scalar` shapes to one pair.
    fn all_shapes<T: Numeric>(op: BinaryOp, x: T, y: T) -> Result<T> {
        let mut out = [T::zero()];
        binary(op, &[x], &[y], &mut out)?;
        let mut right = [T::zero()];
        binary_scalar(op, &[x], y, false, &mut right)?;
        let mut left = [T::zero()];
        binary_scalar(op, &[y], x, true, &mut left)?;
        assert!(same(out[0], right[0]) && same(out[0], left[0]));
        Ok(out[0])
    }

    /// Reference for signed integers, computed in i128 and wrapped.
    fn signed_ref(op: BinaryOp, x: i128, y: i128, bits: u32) -> Option<i128> {
        let wrap = |v: i128| (v << (128 - bits)) >> (128 - bits);
        Some(wrap(match op {
            BinaryOp::Add => x.wrapping_add(y),
            BinaryOp::Sub => x.wrapping_sub(y),
            BinaryOp::Mul => x.wrapping_mul(y),
            BinaryOp::Div | BinaryOp::Rem => {
                if y == 0 {
                    return None;
                }
                // Euclidean division, shifted to floor when y < 0.
                let (mut q, mut r) = (x.div_euclid(y), x.rem_euclid(y));
                if y < 0 && r != 0 {
                    q -= 1;
                    r += y;
                }
                if op == BinaryOp::Div {
                    q
                } else {
                    r
                }
            }
            BinaryOp::Pow => {
                if y < 0 {
                    return None;
                }
                x.wrapping_pow(u32::try_from(y).ok()?)
            }
            BinaryOp::Minimum => x.min(y),
            BinaryOp::Maximum => x.max(y),
            BinaryOp::Fmod => {
                if y == 0 {
                    return None;
                }
                x.wrapping_rem(y)
            }
            BinaryOp::Arctan2 | BinaryOp::Hypot | BinaryOp::Copysign => return None,
        }))
    }

    /// Reference for unsigned integers, computed in u128 and truncated.
    fn unsigned_ref(op: BinaryOp, x: u128, y: u128, bits: u32) -> Option<u128> {
        let mask = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        Some(
            mask & match op {
                BinaryOp::Add => x.wrapping_add(y),
                BinaryOp::Sub => x.wrapping_sub(y),
                BinaryOp::Mul => x.wrapping_mul(y),
                BinaryOp::Div => x.checked_div(y)?,
                BinaryOp::Rem => x.checked_rem(y)?,
                BinaryOp::Pow => x.wrapping_pow(u32::try_from(y).ok()?),
                BinaryOp::Minimum => x.min(y),
                BinaryOp::Maximum => x.max(y),
                BinaryOp::Fmod => x.checked_rem(y)?,
                BinaryOp::Arctan2 | BinaryOp::Hypot | BinaryOp::Copysign => return None,
            },
        )
    }

    /// Reference for floats (Python semantics, written independently).
    fn float_ref(op: BinaryOp, x: f64, y: f64) -> f64 {
        match op {
            BinaryOp::Add => x + y,
            BinaryOp::Sub => x - y,
            BinaryOp::Mul => x * y,
            BinaryOp::Div => x / y,
            BinaryOp::Rem => {
                let m = x % y;
                if m != 0.0 && (m < 0.0) != (y < 0.0) {
                    m + y
                } else if m == 0.0 {
                    0.0f64.copysign(y)
                } else {
                    m
                }
            }
            BinaryOp::Pow => x.powf(y),
            BinaryOp::Minimum => {
                if x.is_nan() || y.is_nan() {
                    f64::NAN
                } else {
                    x.min(y)
                }
            }
            BinaryOp::Maximum => {
                if x.is_nan() || y.is_nan() {
                    f64::NAN
                } else {
                    x.max(y)
                }
            }
            BinaryOp::Arctan2 => x.atan2(y),
            BinaryOp::Hypot => x.hypot(y),
            BinaryOp::Copysign => x.copysign(y),
            BinaryOp::Fmod => x % y,
        }
    }

    fn check_signed<T: Numeric + Into<i128>>(x: T, y: T, bits: u32) {
        for op in BINARY {
            let expected = signed_ref(op, x.into(), y.into(), bits);
            match (all_shapes(op, x, y), expected) {
                (Ok(v), Some(e)) => assert_eq!(v.into(), e, "{x:?} {op:?} {y:?}"),
                (Err(Error::BadArgument(_)), None) => {}
                // Exponents above u32::MAX: no i128 reference, must be Ok.
                (Ok(_), None) if op == BinaryOp::Pow && y.into() > 0 => {}
                (got, e) => panic!("{x:?} {op:?} {y:?}: {got:?}, expected {e:?}"),
            }
        }
    }

    fn check_unsigned<T: Numeric + Into<u128>>(x: T, y: T, bits: u32) {
        for op in BINARY {
            let expected = unsigned_ref(op, x.into(), y.into(), bits);
            match (all_shapes(op, x, y), expected) {
                (Ok(v), Some(e)) => assert_eq!(v.into(), e, "{x:?} {op:?} {y:?}"),
                (Err(Error::BadArgument(_)), None) => {}
                (Ok(_), None) if op == BinaryOp::Pow => {}
                (got, e) => panic!("{x:?} {op:?} {y:?}: {got:?}, expected {e:?}"),
            }
        }
    }

    fn check_float<T: Numeric>(x: T, y: T) {
        for op in BINARY {
            let got = all_shapes(op, x, y).expect("float ops never fail");
            let expected = T::from_f64(float_ref(op, x.to_f64(), y.to_f64()));
            // f32 Pow, Rem, Arctan2 and Hypot are computed in f32, not f64.
            if T::NAME == "f32"
                && matches!(
                    op,
                    BinaryOp::Pow | BinaryOp::Rem | BinaryOp::Arctan2 | BinaryOp::Hypot
                )
            {
                continue;
            }
            assert!(
                same(got, expected),
                "{x:?} {op:?} {y:?}: {got:?} != {expected:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn math_binary_i8(x: i8, y: i8) {
            check_signed(x, y, 8);
        }

        #[test]
        fn math_binary_i64(x: i64, y: i64) {
            check_signed(x, y, 64);
        }

        #[test]
        fn math_binary_i64_small(x in -300i64..300, y in -70i64..70) {
            check_signed(x, y, 64);
        }

        #[test]
        fn math_binary_u8(x: u8, y: u8) {
            check_unsigned(x, y, 8);
        }

        #[test]
        fn math_binary_u64(x: u64, y in prop_oneof![any::<u64>(), 0u64..70]) {
            check_unsigned(x, y, 64);
        }

        #[test]
        fn math_binary_u128(x: u128, y in prop_oneof![any::<u128>(), 0u128..200]) {
            check_unsigned(x, y, 128);
        }

        #[test]
        fn math_binary_f64(x: f64, y: f64) {
            check_float(x, y);
        }

        #[test]
        fn math_binary_f32(x: f32, y: f32) {
            check_float(x, y);
        }

        #[test]
        fn math_compare_matches_operators(x: f64, y in prop_oneof![any::<f64>(), Just(f64::NAN)]) {
            check_compare(x, y);
            check_compare(x as i64, y as i64);
            check_compare(x as f32, y as f32);
        }

        #[test]
        fn math_cast_matches_as(i: i128, u: u128, f: f64, g: f32) {
            check_casts(i);
            check_casts(i as i8);
            check_casts(i as i64);
            check_casts(i as isize);
            check_casts(u);
            check_casts(u as u8);
            check_casts(u as u32);
            check_casts(u as usize);
            check_casts(f);
            check_casts(g);
        }

        #[test]
        fn math_slices_of_many_elements(a in prop::collection::vec(any::<i32>(), 0..64)) {
            let b: Vec<i32> = a.iter().map(|&x| x | 1).collect();
            let mut out = vec![0; a.len()];
            binary(BinaryOp::Rem, &a, &b, &mut out).expect("no zero divisor");
            for i in 0..a.len() {
                let (x, y) = (i64::from(a[i]), i64::from(b[i]));
                prop_assert_eq!(i64::from(out[i]), (x % y + y) % y);
            }
            binary_scalar(BinaryOp::Mul, &a, 3, true, &mut out).expect("mul");
            for i in 0..a.len() {
                prop_assert_eq!(out[i], a[i].wrapping_mul(3));
            }
        }
    }

    fn check_compare<T: Numeric>(x: T, y: T) {
        for op in COMPARE {
            let expected = match op {
                CompareOp::Eq => x == y,
                CompareOp::Ne => x != y,
                CompareOp::Lt => x < y,
                CompareOp::Le => x <= y,
                CompareOp::Gt => x > y,
                CompareOp::Ge => x >= y,
            } as u8;
            let mut out = [7u8];
            compare(op, &[x], &[y], &mut out).expect("compare");
            assert_eq!(out[0], expected, "{x:?} {op:?} {y:?}");
            compare_scalar(op, &[x], y, false, &mut out).expect("compare");
            assert_eq!(out[0], expected);
            compare_scalar(op, &[y], x, true, &mut out).expect("compare");
            assert_eq!(out[0], expected);
        }
    }

    macro_rules! check_cast_to {
        ($x:expr, $($u:ty),*) => {$(
            let got: $u = $x.cast::<$u>();
            let expected = $x as $u;
            assert!(same(got, expected), "{:?} as {}: {got:?} != {expected:?}", $x, stringify!($u));
        )*};
    }

    macro_rules! check_casts_impl {
        ($($t:ty),*) => {
            trait CheckCasts: Numeric {
                fn check_all(self);
            }
            $(
                impl CheckCasts for $t {
                    fn check_all(self) {
                        check_cast_to!(self, i8, i16, i32, i64, i128, isize,
                            u8, u16, u32, u64, u128, usize, f32, f64);
                        assert!(same(self.to_f64(), self as f64));
                        assert!(same(self.widen(), self as <$t as Numeric>::Sum));
                    }
                }
            )*
        };
    }

    check_casts_impl!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);

    fn check_casts<T: CheckCasts>(x: T) {
        x.check_all();
    }

    #[test]
    fn math_cast_edge_values() {
        for x in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e20,
            -1e20,
            1e300,
            -0.5,
            0.5,
        ] {
            check_casts(x);
        }
        check_casts(3.5e38f64); // above f32::MAX
        check_casts(4e38f64); // above u128::MAX
        check_casts(f32::MAX);
        check_casts(f32::NAN);
        for x in [i128::MIN, i128::MAX, -1, 0, 1] {
            check_casts(x);
        }
        for x in [u128::MAX, u128::MAX - 5, i128::MAX as u128 + 1, 0] {
            check_casts(x);
        }
        check_casts(i8::MIN);
        check_casts(u64::MAX);
        check_casts(isize::MIN);
        check_casts(usize::MAX);

        assert_eq!(f64::NAN.cast::<i32>(), 0);
        assert_eq!(1e20f64.cast::<i32>(), i32::MAX);
        assert_eq!((-1e20f64).cast::<u32>(), 0);
        assert_eq!((-1i32).cast::<u8>(), 255);
        assert_eq!(u128::MAX.cast::<f32>(), u128::MAX as f32);
        assert_eq!((u128::MAX - 5).cast::<i64>(), -6);
        assert_eq!((u128::MAX - 5).cast::<i128>(), -6);
        assert_eq!(f64::MAX.cast::<u128>(), u128::MAX);
        assert_eq!((-1i8).cast::<u128>(), u128::MAX);
        assert_eq!(i32::from_f64(f64::NAN), 0);
        assert_eq!(u8::from_f64(300.0), 255);
        assert_eq!(200u8.widen(), 200u64);
        assert_eq!((-100i8).widen(), -100i64);

        let mut out = [0u8; 4];
        cast_slice(&[-1i32, 256, 300, 7], &mut out);
        assert_eq!(out, [255, 0, 44, 7]);
        let mut floats = [0.0f32; 2];
        cast_slice(&[u128::MAX, 1], &mut floats);
        assert_eq!(floats, [u128::MAX as f32, 1.0]);
    }

    /// Compiles only if `T`'s associated types are `S` and `F`.
    fn assoc<T: Numeric<Sum = S, Float = F>, S, F>(is_float: bool) {
        assert_eq!(T::IS_FLOAT, is_float);
    }

    #[test]
    fn math_associated_types() {
        assoc::<i8, i64, f64>(false);
        assoc::<i16, i64, f64>(false);
        assoc::<i32, i64, f64>(false);
        assoc::<i64, i64, f64>(false);
        assoc::<i128, i128, f64>(false);
        assoc::<isize, i64, f64>(false);
        assoc::<u8, u64, f64>(false);
        assoc::<u16, u64, f64>(false);
        assoc::<u32, u64, f64>(false);
        assoc::<u64, u64, f64>(false);
        assoc::<u128, u128, f64>(false);
        assoc::<usize, u64, f64>(false);
        assoc::<f32, f32, f32>(true);
        assoc::<f64, f64, f64>(true);
        assert_eq!(<u8 as Numeric>::zero(), 0);
        assert_eq!(<f32 as Numeric>::one(), 1.0);
    }

    #[test]
    fn math_names() {
        let names: Vec<_> = BINARY.iter().map(|op| op.name()).collect();
        assert_eq!(
            names,
            [
                "add", "sub", "mul", "div", "rem", "pow", "minimum", "maximum", "arctan2", "hypot",
                "copysign", "fmod"
            ]
        );
        let names: Vec<_> = UNARY.iter().map(|op| op.name()).collect();
        assert_eq!(names, ["neg", "abs", "sqrt", "exp", "log", "sin", "cos"]);
        let names: Vec<_> = COMPARE.iter().map(|op| op.name()).collect();
        assert_eq!(names, ["eq", "ne", "lt", "le", "gt", "ge"]);
        let float_valued: Vec<_> = UNARY.iter().map(|op| op.is_float_valued()).collect();
        assert_eq!(float_valued, [false, false, true, true, true, true, true]);
    }

    #[test]
    fn math_floor_division_and_remainder() {
        assert_eq!(all_shapes(BinaryOp::Div, -7i64, 2).ok(), Some(-4));
        assert_eq!(all_shapes(BinaryOp::Rem, -7i64, 2).ok(), Some(1));
        assert_eq!(all_shapes(BinaryOp::Div, 7i64, -2).ok(), Some(-4));
        assert_eq!(all_shapes(BinaryOp::Rem, 7i64, -2).ok(), Some(-1));
        assert_eq!(all_shapes(BinaryOp::Div, -7i8, -2).ok(), Some(3));
        assert_eq!(all_shapes(BinaryOp::Rem, -7i8, -2).ok(), Some(-1));
        assert_eq!(all_shapes(BinaryOp::Div, 6i8, -3).ok(), Some(-2));
        assert_eq!(all_shapes(BinaryOp::Rem, 6i8, -3).ok(), Some(0));
        assert_eq!(all_shapes(BinaryOp::Div, i64::MIN, -1).ok(), Some(i64::MIN));
        assert_eq!(all_shapes(BinaryOp::Rem, i64::MIN, -1).ok(), Some(0));
        assert_eq!(all_shapes(BinaryOp::Div, i8::MIN, -1).ok(), Some(i8::MIN));
        assert_eq!(all_shapes(BinaryOp::Div, 7u8, 2).ok(), Some(3));
        assert_eq!(all_shapes(BinaryOp::Rem, u128::MAX, 10).ok(), Some(5));
        // Floats: Python's floor modulo, IEEE division.
        assert_eq!(all_shapes(BinaryOp::Rem, -7.0f64, 2.0).ok(), Some(1.0));
        assert_eq!(all_shapes(BinaryOp::Rem, 7.0f64, -2.0).ok(), Some(-1.0));
        assert_eq!(all_shapes(BinaryOp::Rem, 5.5f32, 2.0).ok(), Some(1.5));
        let zero = all_shapes(BinaryOp::Rem, 4.0f64, -2.0).ok();
        assert!(zero.is_some_and(|z| z == 0.0 && z.is_sign_negative()));
        assert_eq!(
            all_shapes(BinaryOp::Rem, -1.0f64, f64::INFINITY).ok(),
            Some(f64::INFINITY)
        );
        assert!(all_shapes(BinaryOp::Rem, 1.0f64, 0.0).is_ok_and(f64::is_nan));
        assert_eq!(
            all_shapes(BinaryOp::Div, 1.0f64, 0.0).ok(),
            Some(f64::INFINITY)
        );
        assert_eq!(
            all_shapes(BinaryOp::Div, -1.0f32, 0.0).ok(),
            Some(f32::NEG_INFINITY)
        );
        assert!(all_shapes(BinaryOp::Div, 0.0f64, 0.0).is_ok_and(f64::is_nan));
        assert_eq!(all_shapes(BinaryOp::Div, 7.0f64, 2.0).ok(), Some(3.5));
    }

    #[test]
    fn math_zero_divisor_is_an_error() {
        for op in [BinaryOp::Div, BinaryOp::Rem] {
            assert!(is_bad_argument(
                all_shapes(op, 5i8, 0),
                "integer division by zero"
            ));
            assert!(is_bad_argument(
                all_shapes(op, i64::MIN, 0),
                "integer division by zero"
            ));
            assert!(is_bad_argument(
                all_shapes(op, 0u8, 0),
                "integer division by zero"
            ));
            assert!(is_bad_argument(
                all_shapes(op, 1u128, 0),
                "integer division by zero"
            ));
            // One zero anywhere in the divisors fails the whole slice.
            let mut out = [9u64; 3];
            let r = binary(op, &[1, 2, 3], &[1, 0, 1], &mut out);
            assert!(is_bad_argument(r, "division by zero"));
            assert_eq!(out, [9, 9, 9]);
            let r = binary_scalar(op, &[1i32, 2], 0, false, &mut [0; 2]);
            assert!(is_bad_argument(r, "division by zero"));
            let r = binary_scalar(op, &[1i32, 0], 5, true, &mut [0; 2]);
            assert!(is_bad_argument(r, "division by zero"));
            // A zero dividend is fine; so is a zero scalar over nothing.
            assert!(binary_scalar(op, &[0i32, 0], 5, false, &mut [0; 2]).is_ok());
            assert!(binary_scalar::<i32>(op, &[], 0, false, &mut []).is_ok());
        }
    }

    #[test]
    fn math_powers() {
        let msg = "integers to negative integer powers are not allowed";
        assert!(is_bad_argument(all_shapes(BinaryOp::Pow, 2i64, -1), msg));
        assert!(is_bad_argument(
            all_shapes(BinaryOp::Pow, 1i8, i8::MIN),
            msg
        ));
        assert!(is_bad_argument(all_shapes(BinaryOp::Pow, 0i32, -3), msg));
        assert_eq!(all_shapes(BinaryOp::Pow, 3i64, 4).ok(), Some(81));
        assert_eq!(all_shapes(BinaryOp::Pow, -2i8, 7).ok(), Some(-128));
        assert_eq!(all_shapes(BinaryOp::Pow, 2i8, 8).ok(), Some(0));
        assert_eq!(all_shapes(BinaryOp::Pow, 0i64, 0).ok(), Some(1));
        assert_eq!(all_shapes(BinaryOp::Pow, 2u64, 64).ok(), Some(0));
        assert_eq!(all_shapes(BinaryOp::Pow, 2u64, 63).ok(), Some(1 << 63));
        // Exponents far above u32::MAX.
        assert_eq!(all_shapes(BinaryOp::Pow, -1i64, i64::MAX).ok(), Some(-1));
        assert_eq!(all_shapes(BinaryOp::Pow, -1i64, i64::MAX - 1).ok(), Some(1));
        assert_eq!(all_shapes(BinaryOp::Pow, 2u64, u64::MAX).ok(), Some(0));
        assert_eq!(all_shapes(BinaryOp::Pow, 1u128, u128::MAX).ok(), Some(1));
        assert_eq!(all_shapes(BinaryOp::Pow, 0u128, u128::MAX).ok(), Some(0));
        assert_eq!(all_shapes(BinaryOp::Pow, -1i128, i128::MAX).ok(), Some(-1));
        // x^e = (x^(e >> 32))^(2^32) * x^(e mod 2^32), all wrapping.
        for (x, e) in [(3u64, u64::MAX), (7, 1 << 40), (12345, (5 << 32) + 17)] {
            let high = x
                .wrapping_pow((e >> 32) as u32)
                .wrapping_pow(1 << 16)
                .wrapping_pow(1 << 16);
            let expected = high.wrapping_mul(x.wrapping_pow(e as u32));
            assert_eq!(all_shapes(BinaryOp::Pow, x, e).ok(), Some(expected));
        }
        // Floats: powf.
        assert_eq!(all_shapes(BinaryOp::Pow, 2.0f64, -1.0).ok(), Some(0.5));
        assert!(all_shapes(BinaryOp::Pow, -8.0f64, 1.0 / 3.0).is_ok_and(f64::is_nan));
    }

    #[test]
    fn math_minimum_maximum_propagate_nan() {
        for (x, y) in [(f64::NAN, 1.0), (1.0, f64::NAN), (f64::NAN, f64::NAN)] {
            assert!(all_shapes(BinaryOp::Minimum, x, y).is_ok_and(f64::is_nan));
            assert!(all_shapes(BinaryOp::Maximum, x, y).is_ok_and(f64::is_nan));
        }
        assert!(all_shapes(BinaryOp::Minimum, f32::NAN, 1.0).is_ok_and(f32::is_nan));
        assert_eq!(all_shapes(BinaryOp::Minimum, 1.0f64, 2.0).ok(), Some(1.0));
        assert_eq!(all_shapes(BinaryOp::Maximum, 1.0f64, 2.0).ok(), Some(2.0));
        assert_eq!(all_shapes(BinaryOp::Minimum, -3i8, 2).ok(), Some(-3));
        assert_eq!(
            all_shapes(BinaryOp::Maximum, u128::MAX, 2).ok(),
            Some(u128::MAX)
        );
    }

    #[test]
    fn math_wrapping_arithmetic() {
        assert_eq!(all_shapes(BinaryOp::Add, i8::MAX, 1).ok(), Some(i8::MIN));
        assert_eq!(all_shapes(BinaryOp::Sub, 0u8, 1).ok(), Some(255));
        assert_eq!(
            all_shapes(BinaryOp::Mul, u128::MAX, 2).ok(),
            Some(u128::MAX - 1)
        );
        assert_eq!(all_shapes(BinaryOp::Sub, 1u64, 3).ok(), Some(u64::MAX - 1));
        // scalar_first matters for non-commutative ops.
        let mut out = [0i64; 2];
        binary_scalar(BinaryOp::Sub, &[1, 2], 10, true, &mut out).expect("sub");
        assert_eq!(out, [9, 8]);
        binary_scalar(BinaryOp::Sub, &[1, 2], 10, false, &mut out).expect("sub");
        assert_eq!(out, [-9, -8]);
        binary_scalar(BinaryOp::Div, &[3, -4], 7, true, &mut out).expect("div");
        assert_eq!(out, [2, -2]);
    }

    #[test]
    fn math_unary() {
        let mut out = [0i8; 4];
        unary(UnaryOp::Neg, &[1, -1, i8::MIN, 0], &mut out).expect("neg");
        assert_eq!(out, [-1, 1, i8::MIN, 0]);
        unary(UnaryOp::Abs, &[1, -1, i8::MIN, 0], &mut out).expect("abs");
        assert_eq!(out, [1, 1, i8::MIN, 0]);
        let mut out = [0u8; 3];
        unary(UnaryOp::Neg, &[1, 0, 255], &mut out).expect("neg");
        assert_eq!(out, [255, 0, 1]);
        unary(UnaryOp::Abs, &[1, 0, 255], &mut out).expect("abs");
        assert_eq!(out, [1, 0, 255]);
        let mut out = [0u128; 1];
        unary(UnaryOp::Neg, &[1], &mut out).expect("neg");
        assert_eq!(out, [u128::MAX]);
        let mut out = [0.0f64; 3];
        unary(UnaryOp::Neg, &[1.5, 0.0, f64::NAN], &mut out).expect("neg");
        assert_eq!(out[..2], [-1.5, -0.0]);
        assert!(out[1].is_sign_negative() && out[2].is_nan());
        unary(UnaryOp::Abs, &[-1.5, -0.0, f64::NEG_INFINITY], &mut out).expect("abs");
        assert_eq!(out, [1.5, 0.0, f64::INFINITY]);
        assert!(out[1].is_sign_positive());
        for op in UNARY.into_iter().filter(|op| op.is_float_valued()) {
            assert!(is_bad_argument(
                unary(op, &[1.0f64], &mut [0.0]),
                "unary_float"
            ));
            assert!(is_bad_argument(unary(op, &[1i32], &mut [0]), op.name()));
        }
        assert!(is_bad_argument(
            unary(UnaryOp::Neg, &[1i32], &mut [0; 2]),
            "length"
        ));
    }

    #[test]
    fn math_signs_and_roundings_keep_the_type() {
        let mut out = [0i32; 4];
        unary(UnaryOp::Sign, &[-7, 0, 3, i32::MIN], &mut out).expect("sign");
        assert_eq!(out, [-1, 0, 1, -1]);
        for op in [UnaryOp::Floor, UnaryOp::Ceil, UnaryOp::Trunc, UnaryOp::Rint] {
            unary(op, &[-7, 0, 3, i32::MAX], &mut out).expect("a rounding");
            assert_eq!(out, [-7, 0, 3, i32::MAX], "{} keeps integers", op.name());
        }
        let mut out = [9u8; 3];
        unary(UnaryOp::Sign, &[0, 1, 255], &mut out).expect("sign");
        assert_eq!(out, [0, 1, 1]);
        let x = [-2.5f64, -1.5, -0.5, 0.5, 1.5, 2.5, -0.0, f64::NAN];
        let mut out = [0.0f64; 8];
        unary(UnaryOp::Rint, &x, &mut out).expect("rint");
        assert_eq!(out[..7], [-2.0, -2.0, -0.0, 0.0, 2.0, 2.0, -0.0]);
        assert!(out[7].is_nan());
        unary(UnaryOp::Floor, &x, &mut out).expect("floor");
        assert_eq!(out[..7], [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, -0.0]);
        unary(UnaryOp::Ceil, &x, &mut out).expect("ceil");
        assert_eq!(out[..7], [-2.0, -1.0, -0.0, 1.0, 2.0, 3.0, -0.0]);
        unary(UnaryOp::Trunc, &x, &mut out).expect("trunc");
        assert_eq!(out[..7], [-2.0, -1.0, -0.0, 0.0, 1.0, 2.0, -0.0]);
        unary(UnaryOp::Sign, &x, &mut out).expect("sign");
        assert_eq!(out[..7], [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 0.0]);
        assert!(out[6].is_sign_positive() && out[7].is_nan());
        for op in UnaryOp::ALL {
            assert_eq!(UnaryOp::from_name(op.name()), Some(op));
        }
        assert_eq!(UnaryOp::from_name("nope"), None);
    }

    #[test]
    fn math_float_only_and_c_remainders() {
        let mut out = [0.0f64; 3];
        binary(
            BinaryOp::Arctan2,
            &[1.0, -1.0, 0.0],
            &[1.0, -1.0, -1.0],
            &mut out,
        )
        .expect("arctan2");
        assert_eq!(
            out,
            [1f64.atan2(1.0), (-1f64).atan2(-1.0), std::f64::consts::PI]
        );
        binary(
            BinaryOp::Hypot,
            &[3.0, 1e300, 0.0],
            &[4.0, 1e300, -0.0],
            &mut out,
        )
        .expect("hypot");
        assert_eq!(out, [5.0, 1e300f64.hypot(1e300), 0.0]);
        binary_scalar(BinaryOp::Copysign, &[1.0, -2.0, 3.0], -0.0, false, &mut out)
            .expect("copysign");
        assert_eq!(out, [-1.0, -2.0, -3.0]);
        binary(
            BinaryOp::Fmod,
            &[-7.5, 7.5, 1.0],
            &[2.0, -2.0, 0.0],
            &mut out,
        )
        .expect("fmod");
        assert_eq!(out[..2], [-1.5, 1.5]);
        assert!(out[2].is_nan());
        let mut ints = [0i32; 2];
        binary(BinaryOp::Fmod, &[-7, 7], &[2, -2], &mut ints).expect("fmod");
        assert_eq!(ints, [-1, 1], "the sign of the dividend");
        assert!(is_bad_argument(
            binary(BinaryOp::Fmod, &[1i32], &[0], &mut [0]),
            "division by zero"
        ));
        for op in [BinaryOp::Arctan2, BinaryOp::Hypot, BinaryOp::Copysign] {
            assert!(op.is_float_only());
            assert!(is_bad_argument(
                binary(op, &[1u8], &[2], &mut [0]),
                "floating-point"
            ));
        }
    }

    #[test]
    fn math_unary_float() {
        let mut out = [0.0f64; 5];
        unary_float(UnaryOp::Sqrt, &[4i32, 2, 0, -1, 9], &mut out).expect("sqrt");
        assert_eq!(out[..3], [2.0, 2f64.sqrt(), 0.0]);
        assert!(out[3].is_nan());
        assert_eq!(out[4], 3.0);
        unary_float(UnaryOp::Log, &[1u8, 0, 255, 1, 1], &mut out).expect("log");
        assert_eq!(out[..3], [0.0, f64::NEG_INFINITY, 255f64.ln()]);
        unary_float(UnaryOp::Abs, &[i64::MIN, -1, 0, 1, 2], &mut out).expect("abs");
        assert_eq!(out, [2f64.powi(63), 1.0, 0.0, 1.0, 2.0]);
        unary_float(UnaryOp::Neg, &[u64::MAX, 1, 0, 2, 3], &mut out).expect("neg");
        assert_eq!(out[..2], [-(u64::MAX as f64), -1.0]);
        let mut out32 = [0.0f32; 3];
        unary_float(UnaryOp::Exp, &[0.0f32, 1.0, -1.0], &mut out32).expect("exp");
        assert_eq!(out32, [1.0, 1f32.exp(), (-1f32).exp()]);
        unary_float(UnaryOp::Sqrt, &[-1.0f32, 4.0, f32::INFINITY], &mut out32).expect("sqrt");
        assert!(out32[0].is_nan());
        assert_eq!(out32[1..], [2.0, f32::INFINITY]);
        let mut out = [0.0f64; 2];
        unary_float(UnaryOp::Sin, &[0i8, 1], &mut out).expect("sin");
        assert_eq!(out, [0.0, 1f64.sin()]);
        unary_float(UnaryOp::Cos, &[0u128, u128::MAX], &mut out).expect("cos");
        assert_eq!(out, [1.0, (u128::MAX as f64).cos()]);
        unary_float(UnaryOp::Log, &[0.0f64, -1.0], &mut out).expect("log");
        assert_eq!(out[0], f64::NEG_INFINITY);
        assert!(out[1].is_nan());
        assert!(is_bad_argument(
            unary_float(UnaryOp::Exp, &[1i32, 2], &mut [0.0]),
            "length"
        ));
    }

    #[test]
    fn math_nan_comparisons() {
        let nan = [f64::NAN];
        let mut out = [9u8];
        for (op, expected) in COMPARE.into_iter().zip([0, 1, 0, 0, 0, 0]) {
            compare(op, &nan, &nan, &mut out).expect("compare");
            assert_eq!(out[0], expected, "{op:?}");
            compare_scalar(op, &[1.0], f64::NAN, true, &mut out).expect("compare");
            assert_eq!(out[0], expected, "{op:?}");
        }
        let mut out = [9u8; 3];
        compare_scalar(CompareOp::Lt, &[1i8, 5, -3], 2, false, &mut out).expect("lt");
        assert_eq!(out, [1, 0, 1]);
        compare_scalar(CompareOp::Lt, &[1i8, 5, -3], 2, true, &mut out).expect("lt");
        assert_eq!(out, [0, 1, 0]);
        compare(CompareOp::Ge, &[u128::MAX, 0, 3], &[1, 0, 4], &mut out).expect("ge");
        assert_eq!(out, [1, 1, 0]);
    }

    #[test]
    fn math_select() {
        let mut out = [0i16; 4];
        select(&[1, 0, 255, 0], &[1, 2, 3, 4], &[-1, -2, -3, -4], &mut out).expect("select");
        assert_eq!(out, [1, -2, 3, -4]);
        assert!(is_bad_argument(
            select(&[1, 0], &[1, 2, 3, 4], &[-1, -2, -3, -4], &mut out),
            "mask length"
        ));
        assert!(is_bad_argument(
            select(&[1, 0, 1, 0], &[1, 2, 3], &[-1, -2, -3, -4], &mut out),
            "length"
        ));
    }

    #[test]
    fn math_length_mismatches_are_errors() {
        let mut out = [0.0f64; 2];
        for op in BINARY {
            assert!(is_bad_argument(
                binary(op, &[1.0; 2], &[1.0; 3], &mut out),
                op.name()
            ));
            assert!(is_bad_argument(
                binary(op, &[1.0; 3], &[1.0; 3], &mut out),
                "length"
            ));
            assert!(is_bad_argument(
                binary_scalar(op, &[1.0; 3], 1.0, false, &mut out),
                "length"
            ));
        }
        let mut mask = [0u8; 2];
        for op in COMPARE {
            assert!(is_bad_argument(
                compare(op, &[1; 2], &[1; 3], &mut mask),
                "length"
            ));
            assert!(is_bad_argument(
                compare_scalar(op, &[1; 3], 1, true, &mut mask),
                "length"
            ));
        }
    }
}
