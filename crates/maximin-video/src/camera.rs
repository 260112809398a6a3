//! MiniMax's camera commands: `[Pan left]`, `[Push in, Zoom out]` in a
//! prompt. Commands in one bracket move together; brackets follow one
//! another in the order they appear.

/// One camera move. `Static` is MiniMax's "Static shot".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Camera {
    Static,
    PanLeft,
    PanRight,
    TruckLeft,
    TruckRight,
    PushIn,
    PullOut,
    ZoomIn,
    ZoomOut,
    TiltUp,
    TiltDown,
    PedestalUp,
    PedestalDown,
    Shake,
    TrackingShot,
}

impl Camera {
    /// The command as MiniMax spells it.
    pub fn name(self) -> &'static str {
        match self {
            Camera::Static => "Static shot",
            Camera::PanLeft => "Pan left",
            Camera::PanRight => "Pan right",
            Camera::TruckLeft => "Truck left",
            Camera::TruckRight => "Truck right",
            Camera::PushIn => "Push in",
            Camera::PullOut => "Pull out",
            Camera::ZoomIn => "Zoom in",
            Camera::ZoomOut => "Zoom out",
            Camera::TiltUp => "Tilt up",
            Camera::TiltDown => "Tilt down",
            Camera::PedestalUp => "Pedestal up",
            Camera::PedestalDown => "Pedestal down",
            Camera::Shake => "Shake",
            Camera::TrackingShot => "Tracking shot",
        }
    }

    /// Reads one command (case and spacing ignored); `None` when unknown.
    pub fn parse(command: &str) -> Option<Camera> {
        let words: Vec<String> = command
            .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        let key = words.join(" ");
        Some(match key.as_str() {
            "static shot" | "static" | "fixed shot" => Camera::Static,
            "pan left" => Camera::PanLeft,
            "pan right" => Camera::PanRight,
            "truck left" => Camera::TruckLeft,
            "truck right" => Camera::TruckRight,
            "push in" => Camera::PushIn,
            "pull out" | "push out" => Camera::PullOut,
            "zoom in" => Camera::ZoomIn,
            "zoom out" => Camera::ZoomOut,
            "tilt up" => Camera::TiltUp,
            "tilt down" => Camera::TiltDown,
            "pedestal up" => Camera::PedestalUp,
            "pedestal down" => Camera::PedestalDown,
            "shake" => Camera::Shake,
            "tracking shot" => Camera::TrackingShot,
            _ => return None,
        })
    }
}

/// The camera commands of a prompt, bracket by bracket: each `[...]` is one
/// group of moves made together (MiniMax recommends at most three), groups
/// in the order they appear. Unknown commands are ignored, and a bracket
/// with none known gives no group.
pub fn camera_groups(prompt: &str) -> Vec<Vec<Camera>> {
    let mut groups = Vec::new();
    let mut rest = prompt;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            break;
        };
        let inside = &after[..close];
        // A '[' inside means the first one was never closed: restart there.
        if let Some(inner_open) = inside.rfind('[') {
            rest = &after[inner_open..];
            continue;
        }
        let group: Vec<Camera> = inside
            .split([',', '，', '、'])
            .filter_map(Camera::parse)
            .collect();
        if !group.is_empty() {
            groups.push(group);
        }
        rest = &after[close + 1..];
    }
    groups
}

/// Every camera command of a prompt in order of appearance, flattened
/// (`"[Pan left] a cat [Zoom in, Shake]"` → `PanLeft, ZoomIn, Shake`).
pub fn camera_commands(prompt: &str) -> Vec<Camera> {
    camera_groups(prompt).into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_order() {
        assert_eq!(
            camera_commands("[Pan left] a cat [Zoom in, Shake]"),
            vec![Camera::PanLeft, Camera::ZoomIn, Camera::Shake]
        );
    }

    #[test]
    fn groups_and_unknowns() {
        let prompt = "A man [Truck left, Pedestal up] walks, [dolly zoom] then [ push  IN ,Tilt-down, Static shot] [Tracking shot";
        assert_eq!(
            camera_groups(prompt),
            vec![
                vec![Camera::TruckLeft, Camera::PedestalUp],
                vec![Camera::PushIn, Camera::TiltDown, Camera::Static],
            ]
        );
        assert!(camera_commands("no commands here").is_empty());
        assert_eq!(camera_commands("[[Pan right]"), vec![Camera::PanRight]);
        assert_eq!(
            camera_commands("x [Pull out，Zoom out]"),
            vec![Camera::PullOut, Camera::ZoomOut]
        );
    }

    #[test]
    fn names_round_trip() {
        use Camera::*;
        for c in [
            Static,
            PanLeft,
            PanRight,
            TruckLeft,
            TruckRight,
            PushIn,
            PullOut,
            ZoomIn,
            ZoomOut,
            TiltUp,
            TiltDown,
            PedestalUp,
            PedestalDown,
            Shake,
            TrackingShot,
        ] {
            assert_eq!(Camera::parse(c.name()), Some(c));
        }
    }
}
