//! Waiting, within one deadline: for a busy environment to become Ready before we update it, and for
//! our update to end live (our label), Ready and healthy. Events of our update stream to stderr.

use crate::beanstalk::{Beanstalk, EnvState, Event};
use crate::cancel::{Cancel, Signal, cancelled};
use crate::error::{Error, Result};
use crate::report;
use crate::settings::Health;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Poll intervals: quick at first, so a short deploy is reported soon after it ends, then slower so
/// a long one stays far below Beanstalk's request-rate limits.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(500),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The next interval to sleep.
    pub fn next_interval(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next.mul_f64(1.3)).min(self.max);
        now
    }
}

/// Polls that may fail in a row (after the SDK's own retries) before the wait gives up.
const MAX_POLL_ERRORS: u32 = 5;

/// Sleeps for the next interval, but never past `deadline`; returns early with the signal if the run
/// is cancelled.
async fn pause(backoff: &mut Backoff, deadline: Instant, cancel: &Cancel) -> Option<Signal> {
    let wake = (Instant::now() + backoff.next_interval()).min(deadline);
    tokio::select! {
        _ = tokio::time::sleep_until(wake) => None,
        signal = cancel.wait() => Some(signal),
    }
}

/// Waits until `env` is Ready (another deploy may be running). Missing or terminated: exit 3.
pub async fn until_ready<B: Beanstalk>(
    eb: &B,
    app: &str,
    env: &str,
    mut state: EnvState,
    cancel: &Cancel,
    deadline: Instant,
    started: Instant,
) -> Result<EnvState> {
    let mut backoff = Backoff::default();
    let mut announced = false;
    loop {
        match state.status.as_str() {
            "Ready" => return Ok(state),
            "Terminating" | "Terminated" => return Err(gone(app, env, &state.status)),
            status if !announced => {
                tracing::info!(
                    "{env} is {status} (another deploy or change is running); queued until it is Ready"
                );
                announced = true;
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                environment: env.to_string(),
                label: "(not started)".into(),
                waited_secs: started.elapsed().as_secs(),
                last_state: format!("still {} before our update could start", state.status),
            });
        }
        if let Some(signal) = pause(&mut backoff, deadline, cancel).await {
            return Err(cancelled(
                signal,
                format!("{env} was busy and was not updated by us"),
            ));
        }
        state = match eb.environment(app, env).await? {
            Some(s) => s,
            None => return Err(gone(app, env, "missing")),
        };
    }
}

/// The error for an environment that does not exist or is being terminated.
pub fn gone(app: &str, env: &str, status: &str) -> Error {
    Error::Aws {
        operation: "DescribeEnvironments",
        code: Some("NotFound".into()),
        message: format!(
            "environment '{env}' of application '{app}' {}",
            if status == "missing" {
                "does not exist".to_string()
            } else {
                format!("is {status}")
            }
        ),
        request_id: None,
    }
}

/// Where a poll leaves the deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not settled yet; the text says how it stands.
    Pending(String),
    Success,
    Failed(String),
}

/// Judges one look at the environment, and the ERROR/FATAL events of our update so far.
pub fn judge(state: &EnvState, label: &str, min: Health, errors: &[&Event]) -> Verdict {
    if !errors.is_empty() {
        let messages: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.severity, e.message))
            .collect();
        return Verdict::Failed(messages.join(" / "));
    }
    let ours = state.version_label.as_deref() == Some(label);
    match state.status.as_str() {
        "Terminating" | "Terminated" => {
            return Verdict::Failed(format!("the environment is {}", state.status));
        }
        "Ready" => {}
        status => return Verdict::Pending(format!("status {status}, health {}", state.health)),
    }
    if !ours {
        return Verdict::Failed(format!(
            "the environment is Ready but runs '{}', not '{label}' (rolled back)",
            state.version_label.as_deref().unwrap_or("no version")
        ));
    }
    match state.health.as_str() {
        "Green" => Verdict::Success,
        "Yellow" if min == Health::Yellow => Verdict::Success,
        "Red" => Verdict::Failed("health is Red".into()),
        health => Verdict::Pending(format!("Ready with '{label}', health {health}")),
    }
}

/// What the wait saw.
#[derive(Debug, Clone)]
pub struct Watched {
    pub state: EnvState,
    pub events: Vec<Event>,
}

/// The update being waited for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub app: &'a str,
    pub env: &'a str,
    pub label: &'a str,
    /// The request id of our UpdateEnvironment: it tags the events of this update.
    pub request_id: &'a str,
    pub min: Health,
}

/// Waits for our update to succeed or fail, or for the deadline.
pub async fn deploy<B: Beanstalk>(
    eb: &B,
    target: Target<'_>,
    cancel: &Cancel,
    deadline: Instant,
    started: Instant,
) -> Result<Watched> {
    let Target {
        app,
        env,
        label,
        request_id,
        min,
    } = target;
    // Filtered by request id; the window only bounds the search, with room for clock skew.
    let since = SystemTime::now() - Duration::from_secs(300);
    let mut backoff = Backoff::default();
    let mut seen = HashSet::new();
    let mut events: Vec<Event> = Vec::new();
    let mut errors_in_a_row = 0;
    let mut last: Option<EnvState> = None;
    let mut last_verdict = Verdict::Pending("update started".into());
    loop {
        if Instant::now() >= deadline {
            return Err(deadline_error(env, label, last, last_verdict, started));
        }
        if let Some(signal) = pause(&mut backoff, deadline, cancel).await {
            return Err(cancelled(
                signal,
                format!(
                    "the update of {env} to '{label}' (request {request_id}) was started and goes \
                     on in AWS; follow it with `aws elasticbeanstalk describe-events \
                     --environment-name {env}`"
                ),
            ));
        }
        let (state, new_events) = tokio::join!(
            eb.environment(app, env),
            eb.events(app, env, request_id, since)
        );
        let (state, new_events) = match (state, new_events) {
            (Ok(Some(s)), Ok(e)) => (s, e),
            (Ok(None), _) => return Err(gone(app, env, "missing")),
            (Err(err), _) | (_, Err(err)) => {
                errors_in_a_row += 1;
                if errors_in_a_row >= MAX_POLL_ERRORS {
                    return Err(err);
                }
                tracing::warn!("polling failed ({err}); trying again");
                continue;
            }
        };
        errors_in_a_row = 0;
        for event in new_events {
            if seen.insert((
                event.epoch_millis,
                event.severity.clone(),
                event.message.clone(),
            )) {
                report::event(&event);
                events.push(event);
            }
        }
        let errors: Vec<&Event> = events
            .iter()
            .filter(|e| e.severity == "ERROR" || e.severity == "FATAL")
            .collect();
        last_verdict = judge(&state, label, min, &errors);
        match &last_verdict {
            Verdict::Success => return Ok(Watched { state, events }),
            Verdict::Failed(reason) => {
                return Err(Error::DeployFailed {
                    environment: env.to_string(),
                    label: label.to_string(),
                    reason: reason.clone(),
                });
            }
            Verdict::Pending(_) => last = Some(state),
        }
    }
}

fn deadline_error(
    env: &str,
    label: &str,
    last: Option<EnvState>,
    verdict: Verdict,
    started: Instant,
) -> Error {
    let state_text = match &verdict {
        Verdict::Pending(text) => text.clone(),
        other => format!("{other:?}"),
    };
    // Settled with our version but below the health asked for: the deploy ended, unhealthy.
    if let Some(state) = &last {
        if state.status == "Ready" && state.version_label.as_deref() == Some(label) {
            return Error::DeployFailed {
                environment: env.to_string(),
                label: label.to_string(),
                reason: format!(
                    "the version is live but health stayed {} until the deadline (EB_HEALTH / --health \
                     asks for better; set it to yellow to accept Yellow)",
                    state.health
                ),
            };
        }
    }
    Error::Timeout {
        environment: env.to_string(),
        label: label.to_string(),
        waited_secs: started.elapsed().as_secs(),
        last_state: state_text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beanstalk::{Created, VersionInfo};
    use std::cell::RefCell;
    use std::collections::VecDeque;

    fn env(status: &str, health: &str, label: &str) -> EnvState {
        EnvState {
            name: "e".into(),
            status: status.into(),
            health: health.into(),
            version_label: Some(label.into()),
            cname: None,
        }
    }

    fn event(severity: &str, message: &str, at: i64) -> Event {
        Event {
            date: format!("t{at}"),
            epoch_millis: at,
            severity: severity.into(),
            message: message.into(),
        }
    }

    /// Plays back a script of environment states and event lists, one per poll.
    struct Script {
        states: RefCell<VecDeque<EnvState>>,
        events: RefCell<VecDeque<Vec<Event>>>,
        polls: RefCell<u32>,
    }

    impl Script {
        fn new(states: Vec<EnvState>, events: Vec<Vec<Event>>) -> Self {
            Script {
                states: RefCell::new(states.into()),
                events: RefCell::new(events.into()),
                polls: RefCell::new(0),
            }
        }
    }

    impl Beanstalk for Script {
        async fn environment(&self, _: &str, _: &str) -> Result<Option<EnvState>> {
            *self.polls.borrow_mut() += 1;
            let mut states = self.states.borrow_mut();
            let state = if states.len() > 1 {
                states.pop_front().unwrap()
            } else {
                states[0].clone()
            };
            Ok(Some(state))
        }
        async fn version(&self, _: &str, _: &str) -> Result<Option<VersionInfo>> {
            unreachable!()
        }
        async fn create_version(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
            _: &str,
            _: &str,
        ) -> Result<Created> {
            unreachable!()
        }
        async fn update_environment(&self, _: &str, _: &str, _: &str) -> Result<String> {
            unreachable!()
        }
        async fn events(&self, _: &str, _: &str, _: &str, _: SystemTime) -> Result<Vec<Event>> {
            Ok(self.events.borrow_mut().pop_front().unwrap_or_default())
        }
    }

    /// Our update: label v2 of environment e.
    fn target(request_id: &'static str, min: Health) -> Target<'static> {
        Target {
            app: "a",
            env: "e",
            label: "v2",
            request_id,
            min,
        }
    }

    async fn run(script: &Script, min: Health, timeout: Duration) -> Result<Watched> {
        let started = Instant::now();
        let target = target("req", min);
        deploy(script, target, &Cancel::never(), started + timeout, started).await
    }

    #[tokio::test(start_paused = true)]
    async fn success_needs_ready_our_label_and_green() {
        let script = Script::new(
            vec![
                env("Updating", "Grey", "v1"),
                env("Updating", "Grey", "v1"),
                env("Ready", "Grey", "v2"),
                env("Ready", "Green", "v2"),
            ],
            vec![
                vec![event("INFO", "Environment update is starting.", 1)],
                // The same event again (overlapping window) must not be recorded twice.
                vec![
                    event("INFO", "Environment update is starting.", 1),
                    event("INFO", "Deploying new version to instance(s).", 2),
                ],
            ],
        );
        let start = Instant::now();
        let watched = run(&script, Health::Green, Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(watched.state.health, "Green");
        assert_eq!(watched.events.len(), 2);
        assert_eq!(*script.polls.borrow(), 4);
        // 0.5 + 0.65 + 0.845 + 1.0985 s of backoff: quick polls early on.
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_event_fails_even_before_ready() {
        let script = Script::new(
            vec![env("Updating", "Grey", "v1")],
            vec![vec![event("ERROR", "Failed to deploy application.", 5)]],
        );
        let err = run(&script, Health::Green, Duration::from_secs(600))
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.to_string().contains("Failed to deploy application."),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ready_with_another_label_is_a_rollback() {
        let script = Script::new(vec![env("Ready", "Green", "v1")], vec![]);
        let err = run(&script, Health::Green, Duration::from_secs(600))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("rolled back"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn yellow_is_accepted_only_when_asked() {
        let yellow = || Script::new(vec![env("Ready", "Yellow", "v2")], vec![]);
        assert!(
            run(&yellow(), Health::Yellow, Duration::from_secs(60))
                .await
                .is_ok()
        );
        let err = run(&yellow(), Health::Green, Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("Yellow"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_the_wait_on_time() {
        let script = Script::new(vec![env("Updating", "Grey", "v1")], vec![]);
        let start = Instant::now();
        let err = run(&script, Health::Green, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        // Backoff caps at 5 s: no more than ~12 polls in 30 s, and more than a handful.
        let polls = *script.polls.borrow();
        assert!((6..=14).contains(&polls), "{polls}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_environment_is_waited_for() {
        let script = Script::new(
            vec![env("Updating", "Grey", "v0"), env("Ready", "Green", "v0")],
            vec![],
        );
        let start = Instant::now();
        let state = until_ready(
            &script,
            "a",
            "e",
            env("Updating", "Grey", "v0"),
            &Cancel::never(),
            start + Duration::from_secs(60),
            start,
        )
        .await
        .unwrap();
        assert_eq!(state.status, "Ready");
        assert_eq!(*script.polls.borrow(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_stops_the_wait_and_says_the_update_goes_on() {
        let script = Script::new(vec![env("Updating", "Grey", "v1")], vec![]);
        let (cancel, fire) = Cancel::manual();
        let started = Instant::now();
        let target = target("req-1", Health::Green);
        let wait = deploy(
            &script,
            target,
            &cancel,
            started + Duration::from_secs(600),
            started,
        );
        let stop = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            fire(Signal::Interrupt);
        };
        let (result, ()) = tokio::join!(wait, stop);
        let err = result.unwrap_err();
        assert_eq!(err.exit_code(), 130);
        assert!(err.to_string().contains("request req-1"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut b = Backoff::default();
        let first: Vec<u128> = (0..3).map(|_| b.next_interval().as_millis()).collect();
        assert_eq!(first, [500, 650, 845]);
        for _ in 0..20 {
            b.next_interval();
        }
        assert_eq!(b.next_interval(), Duration::from_secs(5));
    }
}
