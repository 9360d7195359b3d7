"""safety_models: fine-tuned risk maps for crime, traffic accidents and public-health events.

The library never imports streamlit; the dashboard (app.py, pages/) and the command line
(python -m safety_models) both call it.
"""

__version__ = "0.1.0"
