"""Method and limitations: what the models do, what data they saw, and the known risks of
acting on a risk map, in plain words."""

import streamlit as st

from pages import _ui as ui
from safety_models import paths
from safety_models.presentation.text import category_label
from safety_models.schema import CATEGORIES

st.title("Method and limitations")
url = paths.db_url()

st.markdown("""
### What the model does
The city is cut into a grid of square cells and time into windows (a day for crime and
traffic, a week for public health). For every cell, the model looks at the incidents recorded
in the past – each of the last few windows, the average rate over the last weeks, months and
years (recent years weighing more), the same time last year, the day of the week and of the year – as a stack of maps, and predicts **the chance of at least one recorded incident in each cell
during the next window**, and the expected number.

The model is a **ResNet**, the image network from torchvision, with its first layer adapted to
incident maps and a new head that outputs one value per cell. It is not trained from zero: it
starts from a **base model pretrained** on many simulated cities (and on all three kinds of
incident), keeps its early layers as they are (*frozen*), and retrains the later layers on this
city's own history with a small learning rate (*fine-tuning*). This is what lets it work with
the few years of data a city has. Underneath the network sits a simple statistical forecast
from the same maps (a linear model fitted on this city); the network learns corrections to
it, and its training is kept only when it improves the forecast on recent weeks the network
did not train on. Where it does not (on the shared Chicago assault data it often does not),
the model in use is that simple forecast with the pretrained network adding nothing – the
list below says which epoch each model in use kept.

Before a model is used, it is **tested on a later period it never saw**, window by window,
seeing only what was known at the time, and compared with the simple methods analysts already
use: last window's incidents, the long-run average, a kernel density map and a prospective
hotspot map. The **Evaluation** page shows that comparison. A new model replaces the one in use
only when someone promotes it on the **Models and training** page.
""")

st.markdown("### What the models in use saw")
for category in CATEGORIES:
    model_id = ui.active_model_id(category)
    with st.container(border=True):
        st.markdown(f"**{ui.CATEGORY_ICONS[category]} {category_label(category)}**")
        if model_id is None:
            st.caption("No model in use yet.")
            continue
        with ui.shown_errors(f"reading the {category} model"):
            st.markdown(ui.model_description(url, model_id))

st.markdown("""
### Known risks and limits – read before acting on a map
- **Feedback loops.** If patrols or inspections follow the map, more incidents get *recorded*
  where they go, the next model learns that those places are risky, and the map points there
  again – whether or not more happens there. Keep some attention on places the map does not
  flag, note in the records when an incident was found by a patrol sent by the map, and look
  at the calibration and per-window scores on the Evaluation page for drift.
- **Recorded incidents are not all incidents.** The model learns from what was reported and
  recorded. Crimes that victims do not report, minor collisions without police, and illnesses
  that are never tested are invisible to it; places and groups that report less will look
  safer than they are.
- **Displacement.** Acting on a hotspot can move incidents to nearby cells or later times;
  a falling count in a flagged cell is not proof that the risk went away.
- **Small numbers in health data.** Weekly counts of health events per cell are tiny; one
  case more or less changes a cell's rank. Treat the health map as a guide for where to look,
  and read its chances as rough.
- **A chance, not a forecast of one event.** "12 %" means that in about one of eight similar
  windows such a cell records an incident; most flagged cells will have none on a given day.
  Accuracy is high for any method because most cells are quiet – judge by hit rate and PAI.
- **Only the past.** The model knows nothing about events, weather, road works or policy
  changes that are not in the incident records; a city that changes quickly needs frequent
  retraining, and a model is only as current as the data uploaded before it was trained.
- **People, not cells, make decisions.** The map says where incidents were likely to be
  *recorded*; it says nothing about who is responsible and must not be used to target people
  or communities.
""")
