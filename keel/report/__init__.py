"""Reports: plots and HTML for runs (`html`), and the safety card."""
