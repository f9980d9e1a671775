/* The route table: every HTTP resource the server answers. */
#ifndef RF_H_ROUTES_H
#define RF_H_ROUTES_H

#include "service/router.h"

extern const rf_route rf_routes[];

#endif
