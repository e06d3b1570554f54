// FerryAgent
