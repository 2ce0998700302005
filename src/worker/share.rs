//! How the workers alive share the services: each service goes to the
//! worker that wins its rendezvous hash (the highest hash of service and
//! worker id). Every worker computes the same answer from the same list of
//! workers, with no coordination; when a worker joins or leaves, only the
//! services it wins or won move.

/// The worker of `alive` that `service` goes to; `None` when none is.
pub fn winner<'a>(service: &str, alive: &'a [String]) -> Option<&'a str> {
    alive
        .iter()
        .max_by_key(|worker| score(service, worker))
        .map(String::as_str)
}

fn score(service: &str, worker: &str) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(service.as_bytes());
    hasher.update(&[0]);
    hasher.update(worker.as_bytes());
    let mut out = [0; 8];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<String> {
        (0..600).map(|i| format!("service-{i}")).collect()
    }

    #[test]
    fn workers_get_even_shares_and_a_newcomer_moves_only_its_own() {
        let two = vec!["worker-a".to_string(), "worker-b".to_string()];
        let of_a = services()
            .iter()
            .filter(|s| winner(s, &two) == Some("worker-a"))
            .count();
        assert!((240..=360).contains(&of_a), "{of_a} of 600");
        let three = vec![two[0].clone(), two[1].clone(), "worker-c".to_string()];
        for s in services() {
            let before = winner(&s, &two).unwrap();
            let after = winner(&s, &three).unwrap();
            assert!(
                after == before || after == "worker-c",
                "{s}: {before} -> {after}"
            );
        }
        assert_eq!(winner("x", &[]), None);
    }
}
