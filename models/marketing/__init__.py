"""Marketing on top of the served model: campaign audiences, lookalikes, their offline lift, creatives."""
