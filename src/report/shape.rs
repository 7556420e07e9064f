//! A machine's shape: its GPU models and count and the link matrix as built. Two reports are
//! comparable only when their shapes agree: `fleet` compares nodes within a shape, and
//! `check --baseline` refuses a baseline of another shape. A node with an NVLink down keeps its
//! shape (the matrix is as built), so it is compared with its peers and flagged, not set apart.

use crate::model::capacity;
use crate::model::topology::Topology;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Each GPU's index and model name, in the topology's order.
    gpus: Vec<(u32, String)>,
    /// Row per GPU, column per GPU, as built (`X`, `NV18`, `PHB`…).
    links: Vec<Vec<String>>,
}

impl Shape {
    pub fn of(topology: &Topology) -> Shape {
        let gpus = &topology.gpus;
        Shape {
            gpus: gpus.iter().map(|g| (g.index, g.name.clone())).collect(),
            links: gpus
                .iter()
                .map(|row| {
                    gpus.iter()
                        .map(|col| {
                            capacity::built_link(topology, row.index, col.index)
                                .map_or_else(|| "?".to_owned(), |l| l.to_string())
                        })
                        .collect()
                })
                .collect(),
        }
    }

    /// `8x NVIDIA H100 80GB HBM3`: the count and the models, in order.
    pub fn gpus(&self) -> String {
        let mut models: Vec<&str> = self.gpus.iter().map(|(_, name)| name.as_str()).collect();
        models.dedup();
        format!("{}x {}", self.gpus.len(), models.join("+"))
    }

    /// How `other` (there) differs from `self` (here), in one phrase; None when it does not.
    pub fn difference(&self, other: &Shape) -> Option<String> {
        if self.gpus != other.gpus {
            return Some(format!("{} there, {} here", other.gpus(), self.gpus()));
        }
        // Same GPUs, so both matrices are n × n.
        let n = self.gpus.len();
        let (i, j) = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .find(|&(i, j)| self.links[i][j] != other.links[i][j])?;
        Some(format!(
            "GPU{} and GPU{} are joined by {} there, {} here",
            self.gpus[i].0, self.gpus[j].0, other.links[i][j], self.links[i][j]
        ))
    }
}

/// `8x NVIDIA H100 80GB HBM3 [X NV18 … / NV18 X …]`: what `fleet` groups nodes by.
impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<String> = self.links.iter().map(|row| row.join(" ")).collect();
        write!(f, "{} [{}]", self.gpus(), rows.join(" / "))
    }
}
