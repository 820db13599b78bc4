//! Group commit as the API saw it during one blast: how many requests each `accept.lua` call
//! carried, from the `rushline_accept_group_size` histogram on the API's `/metrics`, differenced
//! around the blast.
//!
//! The CPU per request of the API and of Redis falls with the group size (one script call, one
//! round trip, one wake-up for the whole group), so the two figures explain each other.

use std::ops::Sub;

use crate::api::Api;

/// The histogram's name on `/metrics`.
const METRIC: &str = "rushline_accept_group_size";

/// Cumulative counts of the group-size histogram at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupSizes {
    /// `(le, groups of at most le requests)`, in the exporter's (ascending) order; `+Inf` last.
    buckets: Vec<(f64, f64)>,
    /// Requests over all groups.
    sum: f64,
    /// Groups (script calls).
    count: f64,
}

impl GroupSizes {
    /// Reads the API's `/metrics`; `None` when it cannot be read or has no such histogram (an
    /// API that has accepted nothing yet renders none: read as zero groups).
    pub async fn take(api: &Api) -> Option<Self> {
        let response = api.client().get(api.url("/metrics")).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        Some(Self::parse(&response.text().await.ok()?))
    }

    /// The histogram in a Prometheus text exposition (empty when absent).
    pub fn parse(text: &str) -> Self {
        let mut sizes = Self::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(METRIC) else {
                continue;
            };
            let Some((series, value)) = rest.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            if series == "_sum" {
                sizes.sum = value;
            } else if series == "_count" {
                sizes.count = value;
            } else if let Some(le) = series
                .strip_prefix("_bucket{le=\"")
                .and_then(|s| s.strip_suffix("\"}"))
            {
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    match le.parse() {
                        Ok(le) => le,
                        Err(_) => continue,
                    }
                };
                sizes.buckets.push((le, value));
            }
        }
        sizes
    }

    /// Groups counted.
    pub fn groups(&self) -> f64 {
        self.count
    }

    /// Mean requests per group; `None` without groups.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The median group's size, as the upper bound of the bucket holding it (exact for sizes up to
    /// 4, then within the bucket list's steps); `None` without groups.
    pub fn median(&self) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= self.count / 2.0)
            .map(|(le, _)| *le)
    }

    /// The figures of a blast labelled `label`: `accept_groups_<label>`,
    /// `accept_group_mean_<label>`, `accept_group_median_<label>`.
    pub fn figures(&self, label: &str) -> Vec<(String, f64)> {
        let mut figures = vec![(format!("accept_groups_{label}"), self.groups())];
        if let Some(mean) = self.mean() {
            figures.push((format!("accept_group_mean_{label}"), mean));
        }
        if let Some(median) = self.median().filter(|m| m.is_finite()) {
            figures.push((format!("accept_group_median_{label}"), median));
        }
        figures
    }
}

impl Sub for GroupSizes {
    type Output = Self;
    /// What was recorded between `earlier` and `self` (buckets matched by bound; a bucket
    /// missing earlier counts from zero).
    fn sub(self, earlier: Self) -> Self {
        let before = |le: f64| {
            earlier
                .buckets
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |(_, c)| *c)
        };
        Self {
            buckets: self
                .buckets
                .iter()
                .map(|(le, c)| (*le, c - before(*le)))
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(b: [f64; 5], sum: f64, count: f64) -> String {
        format!(
            "# TYPE rushline_accept_group_size histogram\n\
             rushline_accept_group_size_bucket{{le=\"1\"}} {}\n\
             rushline_accept_group_size_bucket{{le=\"2\"}} {}\n\
             rushline_accept_group_size_bucket{{le=\"4\"}} {}\n\
             rushline_accept_group_size_bucket{{le=\"64\"}} {}\n\
             rushline_accept_group_size_bucket{{le=\"+Inf\"}} {}\n\
             rushline_accept_group_size_sum {sum}\n\
             rushline_accept_group_size_count {count}\n\
             rushline_requests_total{{outcome=\"queued\"}} 99\n",
            b[0], b[1], b[2], b[3], b[4]
        )
    }

    #[test]
    fn parses_and_differences_a_histogram() {
        let before = GroupSizes::parse(&exposition([10.0, 10.0, 10.0, 10.0, 10.0], 10.0, 10.0));
        // Then: 2 lone requests, 1 pair, 3 groups of 20.
        let after = GroupSizes::parse(&exposition([12.0, 13.0, 13.0, 16.0, 16.0], 74.0, 16.0));
        let blast = after - before;
        assert_eq!(blast.groups(), 6.0);
        assert_eq!(blast.mean(), Some(64.0 / 6.0));
        // Cumulative 2, 3, 3, 6: the third group of six is the first to reach half.
        assert_eq!(blast.median(), Some(2.0));
        let names: Vec<String> = blast.figures("running").into_iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                "accept_groups_running",
                "accept_group_mean_running",
                "accept_group_median_running"
            ]
        );
    }

    #[test]
    fn no_histogram_means_no_groups() {
        let sizes = GroupSizes::parse("rushline_requests_total{outcome=\"queued\"} 99\n");
        assert_eq!(sizes.groups(), 0.0);
        assert_eq!(sizes.mean(), None);
        assert_eq!(sizes.median(), None);
    }
}
