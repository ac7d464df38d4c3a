//! One regression tree of the ensemble, grown best leaf first from gradient histograms.
//!
//! A leaf's histogram holds, for every column and bin, the sum of the gradients, of the
//! hessians and the row count of its rows. The best split of a column is one scan of its
//! 256 slots, and after a split only the smaller child is counted: the larger one's
//! histogram is its parent's minus the smaller's. That is what makes a tree cost a few
//! passes over the rows however many candidate thresholds there are.

use serde::{Deserialize, Serialize};

use super::bins::{Binned, Binner, MISSING, SLOTS};

/// Categories with fewer rows than this in a node are not ordered by their gradients
/// (their ratio is noise); they go with the right side.
const MIN_CATEGORY_ROWS: u32 = 10;
/// Added to a category's hessian when ordering categories, shrinking small ones' ratios.
const CATEGORY_SMOOTHING: f64 = 10.0;

/// How a tree is grown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GrowOptions {
    /// Leaves per tree at most.
    pub max_leaves: usize,
    /// Rows a leaf needs at least.
    pub min_rows_leaf: u32,
    /// L2 penalty on leaf values.
    pub l2: f64,
    /// Each leaf's value is shrunk by this factor.
    pub learning_rate: f64,
}

/// How a split node sends a row on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Rule {
    /// Bins up to `bin` go left; a missing value goes left when `missing_left`.
    Below {
        /// The last bin on the left.
        bin: u8,
        /// Where missing values go.
        missing_left: bool,
    },
    /// The bins in the set go left, missing (bin 255) included when its bit is set.
    In {
        /// A 256-bit set of bins.
        bins: [u64; 4],
    },
}

impl Rule {
    /// Whether a row in `bin` goes to the left child.
    pub fn goes_left(&self, bin: u8) -> bool {
        match *self {
            Rule::Below {
                bin: last,
                missing_left,
            } => {
                if bin == MISSING {
                    missing_left
                } else {
                    bin <= last
                }
            }
            Rule::In { bins } => bins[usize::from(bin / 64)] & (1u64 << (bin % 64)) != 0,
        }
    }
}

/// A split node's question and children.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// The raw column asked about.
    pub feature: u32,
    /// How its bin decides.
    pub rule: Rule,
    /// Index of the left child.
    pub left: u32,
    /// Index of the right child.
    pub right: u32,
}

/// A node: a leaf when `split` is `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Training rows that reached it.
    pub cover: f64,
    /// A leaf's addition to the margin; for a split node, the cover-weighted mean of the
    /// leaves below it (what the tree adds on average to the rows that reach it).
    pub value: f64,
    /// The question, for a split node.
    pub split: Option<Split>,
}

/// A fitted tree; node 0 is the root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The nodes, children after their parent.
    pub nodes: Vec<Node>,
}

/// Sums of gradients, hessians and rows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Slot {
    g: f64,
    h: f64,
    n: u32,
}

impl Slot {
    fn add(&mut self, other: Slot) {
        self.g += other.g;
        self.h += other.h;
        self.n += other.n;
    }

    fn minus(self, other: Slot) -> Slot {
        Slot {
            g: self.g - other.g,
            h: self.h - other.h,
            n: self.n - other.n,
        }
    }
}

/// The best split found for a leaf.
struct Candidate {
    gain: f64,
    feature: usize,
    rule: Rule,
}

/// A leaf still growing: its rows are `rows[start..end]`.
struct Open {
    node: usize,
    start: usize,
    end: usize,
    histogram: Vec<Slot>,
    sum: Slot,
    best: Option<Candidate>,
}

/// The hessian a side needs at least, so a leaf value is never a division by nearly zero.
const MIN_HESSIAN: f64 = 1e-3;

impl Tree {
    /// Grows a tree on the rows `rows` (indices into `binned`) with their gradients `g`
    /// and hessians `h`, and adds each leaf's value to `margins` of the rows it holds.
    pub fn grow(
        binned: &Binned,
        binner: &Binner,
        rows: &mut [u32],
        gradients: (&[f64], &[f64]),
        margins: &mut [f64],
        options: &GrowOptions,
    ) -> Tree {
        let grower = Grower {
            binned,
            binner,
            g: gradients.0,
            h: gradients.1,
            options,
        };
        let mut nodes = vec![Node {
            cover: rows.len() as f64,
            value: 0.0,
            split: None,
        }];
        let histogram = grower.histogram(rows);
        let sum = grower.total(&histogram);
        let mut root = Open {
            node: 0,
            start: 0,
            end: rows.len(),
            histogram,
            sum,
            best: None,
        };
        root.best = grower.best_split(&root.histogram, root.sum);
        let mut open = vec![root];
        let mut done: Vec<Open> = Vec::new();
        while open.len() + done.len() < options.max_leaves {
            // The open leaf whose split gains most; leaves that cannot split are done.
            let Some(at) = (0..open.len())
                .filter(|&i| open[i].best.is_some())
                .max_by(|&a, &b| gain(&open[a]).total_cmp(&gain(&open[b])))
            else {
                break;
            };
            let leaf = open.swap_remove(at);
            let (left, right) = grower.split(leaf, rows, &mut nodes);
            open.push(left);
            open.push(right);
        }
        done.extend(open);
        for leaf in done {
            let value = -options.learning_rate * leaf.sum.g / (leaf.sum.h + options.l2);
            nodes[leaf.node].value = value;
            for &r in &rows[leaf.start..leaf.end] {
                margins[r as usize] += value;
            }
        }
        let mut tree = Tree { nodes };
        tree.average(0);
        tree
    }

    /// Fills split nodes' values with the cover-weighted mean of their children's.
    fn average(&mut self, at: usize) -> f64 {
        let Some(split) = self.nodes[at].split.clone() else {
            return self.nodes[at].value;
        };
        let (l, r) = (split.left as usize, split.right as usize);
        let value = (self.average(l) * self.nodes[l].cover + self.average(r) * self.nodes[r].cover)
            / self.nodes[at].cover.max(1.0);
        self.nodes[at].value = value;
        value
    }

    /// The leaf a row reaches, given its bin in each column.
    pub fn leaf(&self, bin_of: impl Fn(usize) -> u8) -> usize {
        let mut at = 0;
        while let Some(split) = &self.nodes[at].split {
            at = if split.rule.goes_left(bin_of(split.feature as usize)) {
                split.left
            } else {
                split.right
            } as usize;
        }
        at
    }

    /// Adds each split's push on the way to the row's leaf to its feature: the change in
    /// expected value the answer brings. They sum to the leaf's value minus the root's.
    pub fn attribute(&self, bin_of: impl Fn(usize) -> u8, contributions: &mut [f64]) -> f64 {
        let mut at = 0;
        while let Some(split) = &self.nodes[at].split {
            let next = if split.rule.goes_left(bin_of(split.feature as usize)) {
                split.left
            } else {
                split.right
            } as usize;
            contributions[split.feature as usize] += self.nodes[next].value - self.nodes[at].value;
            at = next;
        }
        self.nodes[at].value
    }
}

fn gain(leaf: &Open) -> f64 {
    leaf.best.as_ref().map_or(f64::NEG_INFINITY, |c| c.gain)
}

struct Grower<'a> {
    binned: &'a Binned,
    binner: &'a Binner,
    g: &'a [f64],
    h: &'a [f64],
    options: &'a GrowOptions,
}

impl Grower<'_> {
    /// Counts the rows' gradients into one histogram per column.
    fn histogram(&self, rows: &[u32]) -> Vec<Slot> {
        let features = self.binned.columns.len();
        let mut histogram = vec![Slot::default(); features * SLOTS];
        // The rows' gradients gathered once, read in order for every column.
        let ordered: Vec<(f64, f64)> = rows
            .iter()
            .map(|&r| (self.g[r as usize], self.h[r as usize]))
            .collect();
        for (f, column) in self.binned.columns.iter().enumerate() {
            let slots = &mut histogram[f * SLOTS..(f + 1) * SLOTS];
            for (&r, &(g, h)) in rows.iter().zip(&ordered) {
                let slot = &mut slots[usize::from(column[r as usize])];
                slot.g += g;
                slot.h += h;
                slot.n += 1;
            }
        }
        histogram
    }

    fn total(&self, histogram: &[Slot]) -> Slot {
        let mut sum = Slot::default();
        if !self.binned.columns.is_empty() {
            for slot in &histogram[..SLOTS] {
                sum.add(*slot);
            }
        }
        sum
    }

    fn score(&self, s: Slot) -> f64 {
        s.g * s.g / (s.h + self.options.l2)
    }

    fn allowed(&self, left: Slot, right: Slot) -> bool {
        left.n >= self.options.min_rows_leaf
            && right.n >= self.options.min_rows_leaf
            && left.h >= MIN_HESSIAN
            && right.h >= MIN_HESSIAN
    }

    fn best_split(&self, histogram: &[Slot], sum: Slot) -> Option<Candidate> {
        if sum.n < 2 * self.options.min_rows_leaf {
            return None;
        }
        let parent = self.score(sum);
        let mut best: Option<Candidate> = None;
        let mut consider = |gain: f64, feature: usize, rule: &dyn Fn() -> Rule| {
            if gain > 1e-12 && best.as_ref().is_none_or(|b| gain > b.gain) {
                best = Some(Candidate {
                    gain,
                    feature,
                    rule: rule(),
                });
            }
        };
        for (f, column) in self.binner.columns.iter().enumerate() {
            let slots = &histogram[f * SLOTS..(f + 1) * SLOTS];
            let bins = column.count();
            let missing = slots[usize::from(MISSING)];
            if column.is_categorical() {
                // Categories (missing among them) ordered by their mean gradient; the best
                // split is then a prefix or a suffix of that order.
                let mut order: Vec<usize> = (0..bins)
                    .chain([usize::from(MISSING)])
                    .filter(|&b| slots[b].n >= MIN_CATEGORY_ROWS)
                    .collect();
                order.sort_by(|&a, &b| {
                    let ratio = |s: Slot| s.g / (s.h + CATEGORY_SMOOTHING);
                    ratio(slots[a]).total_cmp(&ratio(slots[b])).then(a.cmp(&b))
                });
                for direction in [false, true] {
                    if direction {
                        order.reverse();
                    }
                    let mut left = Slot::default();
                    let mut set = [0u64; 4];
                    for &b in order.iter().take(order.len().saturating_sub(1)) {
                        left.add(slots[b]);
                        set[b / 64] |= 1 << (b % 64);
                        let right = sum.minus(left);
                        if self.allowed(left, right) {
                            let gain = self.score(left) + self.score(right) - parent;
                            consider(gain, f, &|| Rule::In { bins: set });
                        }
                    }
                }
            } else {
                for missing_left in [false, true] {
                    if missing_left && missing.n == 0 {
                        break;
                    }
                    let mut left = if missing_left {
                        missing
                    } else {
                        Slot::default()
                    };
                    for (b, &slot) in slots.iter().enumerate().take(bins.saturating_sub(1)) {
                        left.add(slot);
                        let right = sum.minus(left);
                        if self.allowed(left, right) {
                            let gain = self.score(left) + self.score(right) - parent;
                            // Unseen here, missing values follow the larger side.
                            let missing_left = if missing.n == 0 {
                                left.n >= right.n
                            } else {
                                missing_left
                            };
                            consider(gain, f, &|| Rule::Below {
                                bin: b as u8,
                                missing_left,
                            });
                        }
                    }
                }
            }
        }
        best
    }

    /// Splits a leaf by its best candidate: partitions its rows (left first), makes its
    /// two children and their histograms (the smaller counted, the larger subtracted).
    fn split(&self, leaf: Open, rows: &mut [u32], nodes: &mut Vec<Node>) -> (Open, Open) {
        let best = leaf.best.expect("only leaves with a split are split");
        let column = &self.binned.columns[best.feature];
        let range = &mut rows[leaf.start..leaf.end];
        let mut middle = 0;
        for i in 0..range.len() {
            if best.rule.goes_left(column[range[i] as usize]) {
                range.swap(i, middle);
                middle += 1;
            }
        }
        let middle = leaf.start + middle;
        let (left_node, right_node) = (nodes.len(), nodes.len() + 1);
        for (start, end) in [(leaf.start, middle), (middle, leaf.end)] {
            nodes.push(Node {
                cover: (end - start) as f64,
                value: 0.0,
                split: None,
            });
        }
        nodes[leaf.node].split = Some(Split {
            feature: best.feature as u32,
            rule: best.rule,
            left: left_node as u32,
            right: right_node as u32,
        });
        let left_smaller = middle - leaf.start <= leaf.end - middle;
        let (small, large) = if left_smaller {
            ((leaf.start, middle), (middle, leaf.end))
        } else {
            ((middle, leaf.end), (leaf.start, middle))
        };
        let small_histogram = self.histogram(&rows[small.0..small.1]);
        let mut large_histogram = leaf.histogram;
        for (l, s) in large_histogram.iter_mut().zip(&small_histogram) {
            *l = l.minus(*s);
        }
        let make = |node, (start, end): (usize, usize), histogram: Vec<Slot>| {
            let sum = self.total(&histogram);
            let best = self.best_split(&histogram, sum);
            Open {
                node,
                start,
                end,
                histogram,
                sum,
                best,
            }
        };
        let (small_node, large_node) = if left_smaller {
            (left_node, right_node)
        } else {
            (right_node, left_node)
        };
        let small = make(small_node, small, small_histogram);
        let large = make(large_node, large, large_histogram);
        if left_smaller {
            (small, large)
        } else {
            (large, small)
        }
    }
}
