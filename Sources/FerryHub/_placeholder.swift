// FerryHub
