//! Task graph ordering: a stable topological order, or the cycle that prevents one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Orders nodes `0..deps.len()` so that every node comes after all of its dependencies
/// (`deps[i]` lists the nodes `i` depends on). Among nodes that are ready at the same time the
/// lower index goes first, so the order follows the file where the graph allows.
///
/// On a cycle, returns its nodes in dependency order with the first node repeated at the end
/// (`[a, b, a]` means a depends on b which depends on a).
pub fn execution_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = deps.len();
    let mut unmet = vec![0usize; n];
    let mut dependents = vec![Vec::new(); n];
    for (node, ds) in deps.iter().enumerate() {
        for &d in ds {
            unmet[node] += 1;
            dependents[d].push(node);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| unmet[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(node)) = ready.pop() {
        order.push(node);
        for &dep in &dependents[node] {
            unmet[dep] -= 1;
            if unmet[dep] == 0 {
                ready.push(Reverse(dep));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(find_cycle(deps, &unmet))
}

/// Every node left with unmet dependencies depends on another such node, so walking those
/// edges from any of them must come back to a node already seen.
fn find_cycle(deps: &[Vec<usize>], unmet: &[usize]) -> Vec<usize> {
    let Some(start) = (0..deps.len()).find(|&i| unmet[i] > 0) else {
        return Vec::new();
    };
    let mut position = vec![None; deps.len()];
    let mut path = Vec::new();
    let mut node = start;
    loop {
        if let Some(at) = position[node] {
            let mut cycle: Vec<usize> = path[at..].to_vec();
            cycle.push(node);
            return cycle;
        }
        position[node] = Some(path.len());
        path.push(node);
        match deps[node].iter().copied().find(|&d| unmet[d] > 0) {
            Some(next) => node = next,
            None => return path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn diamond_is_ordered_and_stable() {
        // a=0, b=1 (a), c=2 (a), d=3 (b, c)
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2]];
        assert_eq!(execution_order(&deps), Ok(vec![0, 1, 2, 3]));
    }

    #[test]
    fn file_order_breaks_ties() {
        let deps = vec![vec![2], vec![], vec![]];
        assert_eq!(execution_order(&deps), Ok(vec![1, 2, 0]));
    }

    #[test]
    fn names_the_cycle() {
        // 0 -> 1 -> 2 -> 0, 3 independent
        let deps = vec![vec![1], vec![2], vec![0], vec![]];
        let cycle = execution_order(&deps).unwrap_err();
        assert_eq!(cycle, vec![0, 1, 2, 0]);
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        assert_eq!(execution_order(&[vec![0]]), Err(vec![0, 0]));
    }

    #[test]
    fn empty_graph_is_fine() {
        assert_eq!(execution_order(&[]), Ok(vec![]));
    }

    fn random_dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
        (1usize..40).prop_flat_map(|n| {
            // Node i may depend only on nodes ranked below it in a random permutation.
            (
                Just(n),
                Just(n).prop_shuffle_perm(),
                proptest::collection::vec(any::<u64>(), n),
            )
                .prop_map(|(n, perm, seeds)| {
                    (0..n)
                        .map(|i| {
                            (0..n)
                                .filter(|&j| perm[j] < perm[i] && (seeds[i] >> (j % 64)) & 1 == 1)
                                .collect()
                        })
                        .collect()
                })
        })
    }

    trait ShufflePerm {
        fn prop_shuffle_perm(self) -> BoxedStrategy<Vec<usize>>;
    }

    impl ShufflePerm for Just<usize> {
        fn prop_shuffle_perm(self) -> BoxedStrategy<Vec<usize>> {
            Just((0..self.0).collect::<Vec<_>>()).prop_shuffle().boxed()
        }
    }

    proptest! {
        #[test]
        fn order_respects_every_edge(deps in random_dag()) {
            let order = execution_order(&deps).expect("a DAG has an order");
            prop_assert_eq!(order.len(), deps.len());
            let mut pos = vec![0; deps.len()];
            for (p, &node) in order.iter().enumerate() {
                pos[node] = p;
            }
            for (node, ds) in deps.iter().enumerate() {
                for &d in ds {
                    prop_assert!(pos[d] < pos[node], "{} must come after {}", node, d);
                }
            }
        }

        #[test]
        fn graphs_with_a_cycle_are_rejected(
            mut deps in random_dag(),
            picks in proptest::collection::vec(any::<proptest::sample::Index>(), 1..6),
        ) {
            // Close a cycle through the picked nodes: p0 -> p1 -> ... -> p0.
            let n = deps.len();
            let nodes: Vec<usize> = picks.iter().map(|i| i.index(n)).collect();
            for w in 0..nodes.len() {
                let from = nodes[w];
                let to = nodes[(w + 1) % nodes.len()];
                if !deps[from].contains(&to) {
                    deps[from].push(to);
                }
            }
            let cycle = execution_order(&deps).expect_err("a cycle was added");
            prop_assert!(cycle.len() >= 2);
            prop_assert_eq!(cycle.first(), cycle.last());
            for pair in cycle.windows(2) {
                prop_assert!(deps[pair[0]].contains(&pair[1]), "{:?} is not an edge", pair);
            }
        }
    }
}
