//! Observation and action spaces.

/// A space of observations or actions.
#[derive(Debug, Clone, PartialEq)]
pub enum Space {
    /// A box of real vectors with per-component bounds (±∞ allowed).
    Box {
        /// Lower bounds.
        low: Vec<f64>,
        /// Upper bounds.
        high: Vec<f64>,
    },
    /// {0, 1, …, n − 1}.
    Discrete {
        /// Number of choices.
        n: usize,
    },
}

impl Space {
    /// A box with the same bounds in every one of `dim` components.
    pub fn uniform_box(dim: usize, low: f64, high: f64) -> Self {
        Space::Box {
            low: vec![low; dim],
            high: vec![high; dim],
        }
    }

    /// An unbounded box of `dim` components.
    pub fn unbounded(dim: usize) -> Self {
        Self::uniform_box(dim, f64::NEG_INFINITY, f64::INFINITY)
    }

    /// Number of scalars an element occupies in a flat buffer (a discrete action is one scalar).
    pub fn flat_dim(&self) -> usize {
        match self {
            Space::Box { low, .. } => low.len(),
            Space::Discrete { .. } => 1,
        }
    }

    /// Whether this is a discrete space.
    pub fn is_discrete(&self) -> bool {
        matches!(self, Space::Discrete { .. })
    }

    /// The upper bounds of a box (None for a discrete space).
    pub fn high(&self) -> Option<&[f64]> {
        match self {
            Space::Box { high, .. } => Some(high),
            Space::Discrete { .. } => None,
        }
    }
}
