"""Sea-Undistort: through-water image restoration."""
