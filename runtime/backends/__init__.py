"""Runtime backends behind one step interface: numpy (the reference), ort, c."""
