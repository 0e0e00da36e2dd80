"""One module per family of route styles. Each maps the catalogue's style names to handlers;
``target_app.main`` mounts them at the catalogue's paths and checks that both agree."""
