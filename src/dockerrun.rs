//! Offline validation of Dockerrun.aws.json (versions 1, 2 and 3), before anything touches AWS.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// The file name Beanstalk looks for at the root of the bundle.
pub const FILE: &str = "Dockerrun.aws.json";

/// What else the bundle holds, which some versions depend on.
#[derive(Debug, Default, Clone, Copy)]
pub struct Siblings {
    pub dockerfile: bool,
    pub compose: bool,
}

/// A checked Dockerrun: its version and, for v2, the container names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerrun {
    pub version: u8,
    pub containers: Vec<String>,
}

/// Parses and checks `bytes` as a Dockerrun.aws.json; errors name the file, container and field.
pub fn validate(bytes: &[u8], siblings: Siblings) -> Result<Dockerrun> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::bundle(
            FILE,
            format!(
                "invalid JSON at line {} column {}: {}",
                e.line(),
                e.column(),
                strip_position(&e.to_string())
            ),
        )
    })?;
    let root = doc
        .as_object()
        .ok_or_else(|| Error::bundle(FILE, "must be a JSON object"))?;
    let version = match root.get("AWSEBDockerrunVersion") {
        None => return Err(Error::bundle(FILE, "AWSEBDockerrunVersion is missing")),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match version {
        Some(1) => v1(root, siblings),
        Some(2) => v2(root),
        Some(3) => {
            if siblings.compose {
                Ok(Dockerrun {
                    version: 3,
                    containers: vec![],
                })
            } else {
                Err(Error::bundle(
                    FILE,
                    "AWSEBDockerrunVersion 3 needs docker-compose.yml in the bundle folder",
                ))
            }
        }
        _ => Err(Error::bundle(
            FILE,
            format!(
                "AWSEBDockerrunVersion must be 1, 2 or 3, not {}",
                root["AWSEBDockerrunVersion"]
            ),
        )),
    }
}

fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

fn v1(root: &Map<String, Value>, siblings: Siblings) -> Result<Dockerrun> {
    match root.get("Image") {
        Some(Value::Object(image)) => {
            if non_empty_str(image.get("Name")).is_none() && !siblings.dockerfile {
                return Err(Error::bundle(
                    FILE,
                    "Image.Name is required (or put a Dockerfile in the bundle folder)",
                ));
            }
            let ports = root.get("Ports").and_then(Value::as_array);
            if ports.is_none_or(|p| p.is_empty()) {
                return Err(Error::bundle(
                    FILE,
                    "Ports is required when Image is given (e.g. [{\"ContainerPort\": 80}])",
                ));
            }
        }
        Some(_) => return Err(Error::bundle(FILE, "Image must be an object")),
        None if siblings.dockerfile => {}
        None => {
            return Err(Error::bundle(
                FILE,
                "Image.Name is required (or put a Dockerfile in the bundle folder)",
            ));
        }
    }
    Ok(Dockerrun {
        version: 1,
        containers: vec![],
    })
}

fn v2(root: &Map<String, Value>) -> Result<Dockerrun> {
    let defs = match root.get("containerDefinitions") {
        Some(Value::Array(defs)) if !defs.is_empty() => defs,
        Some(Value::Array(_)) | None => {
            return Err(Error::bundle(
                FILE,
                "containerDefinitions must list at least one container",
            ));
        }
        Some(_) => return Err(Error::bundle(FILE, "containerDefinitions must be an array")),
    };
    let volumes: HashSet<&str> = root
        .get("volumes")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(|vol| vol.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();

    let mut names = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        let at = format!("containerDefinitions[{i}]");
        let def = def
            .as_object()
            .ok_or_else(|| Error::bundle(FILE, format!("{at} must be an object")))?;
        let name = non_empty_str(def.get("name"))
            .ok_or_else(|| Error::bundle(FILE, format!("{at}: name is required")))?;
        if names.iter().any(|n| n == name) {
            return Err(Error::bundle(
                FILE,
                format!("{at}: name '{name}' is used by two containers"),
            ));
        }
        names.push(name.to_string());
    }

    let mut host_ports: Vec<(u64, &str)> = Vec::new();
    let mut any_essential = false;
    for (def, name) in defs.iter().zip(&names) {
        let def = def.as_object().expect("checked above");
        let field = |f: &str| format!("container '{name}': {f}");
        if non_empty_str(def.get("image")).is_none() {
            return Err(Error::bundle(FILE, field("image is required")));
        }
        let memory = positive(def, "memory", name)?;
        let reservation = positive(def, "memoryReservation", name)?;
        match (memory, reservation) {
            (None, None) => {
                return Err(Error::bundle(
                    FILE,
                    field("memory or memoryReservation is required (MiB)"),
                ));
            }
            (Some(m), Some(r)) if m <= r => {
                return Err(Error::bundle(
                    FILE,
                    field(&format!(
                        "memory ({m}) must be greater than memoryReservation ({r})"
                    )),
                ));
            }
            _ => {}
        }
        any_essential |= def
            .get("essential")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        for link in array(def, "links") {
            let target = link.as_str().unwrap_or_default();
            let target = target.split(':').next().unwrap_or_default();
            if !names.iter().any(|n| n == target) {
                return Err(Error::bundle(
                    FILE,
                    field(&format!("links names '{target}', which is not a container")),
                ));
            }
        }
        for mapping in array(def, "portMappings") {
            if let Some(port) = mapping.get("hostPort").and_then(Value::as_u64) {
                if let Some((_, other)) = host_ports.iter().find(|(p, _)| *p == port) {
                    return Err(Error::bundle(
                        FILE,
                        field(&format!(
                            "portMappings hostPort {port} is already used by container '{other}'"
                        )),
                    ));
                }
                host_ports.push((port, name));
            }
        }
        for mount in array(def, "mountPoints") {
            let source = mount
                .get("sourceVolume")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !volumes.contains(source) {
                return Err(Error::bundle(
                    FILE,
                    field(&format!(
                        "mountPoints sourceVolume '{source}' is not declared in volumes"
                    )),
                ));
            }
        }
        for from in array(def, "volumesFrom") {
            let source = from
                .get("sourceContainer")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !names.iter().any(|n| n == source) {
                return Err(Error::bundle(
                    FILE,
                    field(&format!(
                        "volumesFrom sourceContainer '{source}' is not a container"
                    )),
                ));
            }
        }
    }
    if !any_essential {
        return Err(Error::bundle(
            FILE,
            "no container is essential: mark at least one with \"essential\": true",
        ));
    }
    Ok(Dockerrun {
        version: 2,
        containers: names,
    })
}

fn non_empty_str(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn array<'a>(def: &'a Map<String, Value>, field: &str) -> &'a [Value] {
    def.get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn positive(def: &Map<String, Value>, field: &str, name: &str) -> Result<Option<u64>> {
    match def.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::bundle(
                FILE,
                format!(
                    "container '{name}': {field} must be a whole number of MiB above 0, not {v}"
                ),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &str = include_str!("../examples/multi-docker/Dockerrun.aws.json");

    fn check(json: &str) -> Result<Dockerrun> {
        validate(json.as_bytes(), Siblings::default())
    }

    fn message(json: &str) -> String {
        check(json).unwrap_err().to_string()
    }

    #[test]
    fn the_multi_docker_example_is_valid() {
        let run = check(MULTI).unwrap();
        assert_eq!(run.version, 2);
        assert_eq!(run.containers, ["client", "server", "worker", "nginx"]);
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let msg = message("{\n  \"AWSEBDockerrunVersion\": 2,\n  oops\n}");
        assert!(msg.contains("line 3 column 3"), "{msg}");
    }

    #[test]
    fn versions() {
        assert_eq!(
            check(r#"{"AWSEBDockerrunVersion":"1","Image":{"Name":"nginx"},"Ports":[{"ContainerPort":80}]}"#)
                .unwrap()
                .version,
            1
        );
        assert!(message(r#"{"AWSEBDockerrunVersion":4}"#).contains("must be 1, 2 or 3"));
        assert!(message(r#"{"AWSEBDockerrunVersion":3}"#).contains("docker-compose.yml"));
        let with_compose = Siblings {
            compose: true,
            ..Default::default()
        };
        assert!(validate(br#"{"AWSEBDockerrunVersion":3}"#, with_compose).is_ok());
        assert!(message(r#"{"AWSEBDockerrunVersion":1,"Image":{"Name":"x"}}"#).contains("Ports"));
        assert!(message(r#"{"AWSEBDockerrunVersion":1}"#).contains("Image.Name"));
        let with_dockerfile = Siblings {
            dockerfile: true,
            ..Default::default()
        };
        assert!(validate(br#"{"AWSEBDockerrunVersion":1}"#, with_dockerfile).is_ok());
    }

    fn v2_with(defs: &str) -> String {
        format!(
            r#"{{"AWSEBDockerrunVersion":2,"volumes":[{{"name":"data"}}],"containerDefinitions":[{defs}]}}"#
        )
    }

    #[test]
    fn v2_rules_each_name_the_container_and_field() {
        let cases = [
            ("", "at least one container"),
            (r#"{"image":"a","memory":1}"#, "name is required"),
            (r#"{"name":"a","memory":1}"#, "container 'a': image"),
            (
                r#"{"name":"a","image":"a","memory":1},{"name":"a","image":"b","memory":1}"#,
                "used by two",
            ),
            (
                r#"{"name":"a","image":"a"}"#,
                "container 'a': memory or memoryReservation",
            ),
            (
                r#"{"name":"a","image":"a","memory":0}"#,
                "container 'a': memory must be",
            ),
            (
                r#"{"name":"a","image":"a","memory":64,"memoryReservation":128}"#,
                "greater than memoryReservation",
            ),
            (
                r#"{"name":"a","image":"a","memory":1,"essential":false}"#,
                "no container is essential",
            ),
            (
                r#"{"name":"a","image":"a","memory":1,"links":["b"]}"#,
                "container 'a': links names 'b'",
            ),
            (
                r#"{"name":"a","image":"a","memory":1,"portMappings":[{"hostPort":80}]},{"name":"b","image":"b","memory":1,"portMappings":[{"hostPort":80}]}"#,
                "container 'b': portMappings hostPort 80",
            ),
            (
                r#"{"name":"a","image":"a","memory":1,"mountPoints":[{"sourceVolume":"logs"}]}"#,
                "sourceVolume 'logs'",
            ),
            (
                r#"{"name":"a","image":"a","memory":1,"volumesFrom":[{"sourceContainer":"z"}]}"#,
                "sourceContainer 'z'",
            ),
        ];
        for (defs, expected) in cases {
            let msg = message(&v2_with(defs));
            assert!(msg.starts_with("Dockerrun.aws.json: "), "{msg}");
            assert!(msg.contains(expected), "{defs}: {msg}");
        }
        let ok = v2_with(
            r#"{"name":"a","image":"a","memoryReservation":64,"links":["b:api"],"mountPoints":[{"sourceVolume":"data"}]},{"name":"b","image":"b","memory":128,"memoryReservation":64,"volumesFrom":[{"sourceContainer":"a"}]}"#,
        );
        assert!(check(&ok).is_ok());
    }
}
