"""Host-side code: stdlib only, shipped to the production host by the capture roles."""
