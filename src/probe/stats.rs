//! Summaries of repeated samples: the median reported, and the spread that says whether to
//! trust it.

/// Median, extremes and coefficient of variation of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Sample standard deviation over the mean (0 for fewer than two samples).
    pub cv: f64,
}

/// Summarizes `values`; `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let mean = sorted.iter().sum::<f64>() / n as f64;
    let cv = if n < 2 || mean == 0.0 {
        0.0
    } else {
        let variance = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        variance.sqrt() / mean
    };
    Some(Summary {
        median,
        min: sorted[0],
        max: sorted[n - 1],
        cv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(summarize(&[3.0, 1.0, 2.0]).unwrap().median, 2.0);
        assert_eq!(summarize(&[4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
    }

    #[test]
    fn coefficient_of_variation_uses_the_sample_deviation() {
        // mean 10, sample standard deviation sqrt(((−1)² + 0 + 1²) / 2) = 1
        let s = summarize(&[9.0, 10.0, 11.0]).unwrap();
        assert!((s.cv - 0.1).abs() < 1e-12, "{s:?}");
        assert_eq!((s.min, s.max), (9.0, 11.0));
    }

    #[test]
    fn one_sample_has_no_spread_and_none_has_no_summary() {
        assert_eq!(summarize(&[5.0]).unwrap().cv, 0.0);
        assert_eq!(summarize(&[]), None);
    }
}
