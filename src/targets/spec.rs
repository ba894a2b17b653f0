//! `--target` as a value: where stagings land. Parsed once, when the flags are read, so a
//! misspelt target is a usage error before anything is read or written.

use std::path::PathBuf;
use std::str::FromStr;

/// Where stagings land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// `auto`: the cluster when a kubeconfig or an in-cluster configuration is found (for
    /// `plan`, else an empty target).
    Auto,
    /// `kube` (kubeconfig inference) or `kube:PATH` (that kubeconfig file).
    Kube(Option<PathBuf>),
    /// `dir:PATH`: a folder per staging.
    Dir(PathBuf),
    /// `none`: an empty target that changes nothing, for plans.
    None,
}

/// Why a `--target` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `dir:` without a path.
    #[error("give a directory: dir:PATH")]
    NoDirectory,
    /// `kube:` without a path.
    #[error("give a kubeconfig file: kube:PATH (or kube for the usual one)")]
    NoKubeconfig,
    /// Anything else.
    #[error("known targets are kube, kube:KUBECONFIG, dir:PATH and auto (and none, for plan)")]
    Unknown,
}

impl FromStr for TargetSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<TargetSpec, SpecError> {
        match s {
            "auto" => Ok(TargetSpec::Auto),
            "none" => Ok(TargetSpec::None),
            "kube" => Ok(TargetSpec::Kube(None)),
            _ => {
                if let Some(path) = s.strip_prefix("kube:") {
                    if path.is_empty() {
                        return Err(SpecError::NoKubeconfig);
                    }
                    return Ok(TargetSpec::Kube(Some(path.into())));
                }
                match s.strip_prefix("dir:") {
                    Some("") => Err(SpecError::NoDirectory),
                    Some(path) => Ok(TargetSpec::Dir(path.into())),
                    None => Err(SpecError::Unknown),
                }
            }
        }
    }
}

impl std::fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetSpec::Auto => f.write_str("auto"),
            TargetSpec::None => f.write_str("none"),
            TargetSpec::Kube(None) => f.write_str("kube"),
            TargetSpec::Kube(Some(p)) => write!(f, "kube:{}", p.display()),
            TargetSpec::Dir(p) => write!(f, "dir:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_target_reads_back_as_written() {
        for s in [
            "auto",
            "none",
            "kube",
            "kube:/etc/kc",
            "dir:out",
            "dir:/tmp/a:b",
        ] {
            let spec: TargetSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        assert_eq!("dir:".parse::<TargetSpec>(), Err(SpecError::NoDirectory));
        assert_eq!("kube:".parse::<TargetSpec>(), Err(SpecError::NoKubeconfig));
        for bad in ["", "k8s", "Kube", "dir", "file:/x"] {
            assert_eq!(bad.parse::<TargetSpec>(), Err(SpecError::Unknown), "{bad}");
        }
    }
}
