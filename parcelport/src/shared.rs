//! The files a job keeps in the shared-memory directory (`/dev/shm`): the
//! shared-memory parcelport's inboxes, rings and bulk segments. All are
//! named `hpx-<job>-…`, the job tag derived from the job secret
//! ([`job_tag`]), so that whoever ends last (any locality, or the launcher)
//! can remove every file the job left behind: [`remove_job_files`].

use std::path::Path;

/// A short public tag of the job with `secret`, for file names: 16 hex
/// digits of a SHA-256 of the secret (which it does not reveal).
pub fn job_tag(secret: &[u8]) -> String {
    let mut input = b"hpx-rs shared files v1:".to_vec();
    input.extend_from_slice(secret);
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Removes every file of the job tagged `job` from `dir`; returns how many.
/// For the end of a job: files of a locality that was killed, or that
/// nobody took, would otherwise stay in memory until the next reboot.
pub fn remove_job_files(dir: &Path, job: &str) -> usize {
    let prefix = format!("hpx-{job}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_cleans_up_files_of_any_of_its_localities() {
        let dir = std::env::temp_dir();
        let job = job_tag(b"the_job_cleans_up");
        assert_eq!(job.len(), 16);
        assert_ne!(job, job_tag(b"another secret"));
        let bystander = dir.join(format!("hpx-{}-in-0", job_tag(b"bystander")));
        std::fs::write(&bystander, b"other job").unwrap();
        let names = [format!("hpx-{job}-in-0"), format!("hpx-{job}-bulk-1-0-3")];
        for n in &names {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        assert_eq!(remove_job_files(&dir, &job), 2);
        for n in &names {
            assert!(!dir.join(n).exists(), "{n} left behind");
        }
        assert!(bystander.exists(), "another job's file was removed");
        let _ = std::fs::remove_file(bystander);
        assert_eq!(remove_job_files(&dir, &job), 0);
    }
}
